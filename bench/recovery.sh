#!/usr/bin/env bash
# The whole recovery, timed (issue 7): the runbook's procedure against our pipe, on a pg_dumpall of at least
# 300 MB stored the a9s way (gzip | openssl enc -aes256 -md md5 | split into <uuid>-<ms>-<n> parts, plus
# <uuid>-<ms>.json) in an S3 API server on loopback (moto). Each restore goes into a fresh cluster (initdb and
# start are not timed) and is checked against the source database (rows and a checksum per table, numbers of
# indexes, constraints and functions) before its time counts. Cases, alternating in each round:
#
#   psql       psql --quiet -X postgres < dump                                 (the dump file, page-cached)
#   pgrestore  a9s-pgrestore --jobs N -d postgres dump, for N in $A9S_BENCH_JOBS
#   runbook    aws s3 cp --recursive --exclude '*' --include '<id>*' s3://bucket dir;
#              cat $(ls -1v dir/<id>-*) | openssl enc -aes256 -md md5 -d -pass file:KEY | gunzip -c > dump;
#              psql --quiet -X postgres < dump                                 (one after another)
#   pipe       a9s-fetch --latest s3://bucket/<uuid> -o - | a9s-decrypt --pass file:KEY |
#              a9s-pgrestore --jobs N -d postgres                              (N = $A9S_BENCH_PIPE_JOBS)
#
# Prints the median wall time of each case, the ratios against their targets (a9s-pgrestore --jobs 2 at most
# 0.85 of psql, the pipe at most 0.7 of the runbook), the peak RSS of every program (GNU time's %M) and the
# peak extra disk of each procedure (du -sb of its working directory sampled every 0.2 s, growth over the start;
# the clusters' data directories, the same for both, are elsewhere). Not part of the test suite.
#
# Environment (see also bench/lib.sh): A9S_BENCH_MB (dump size, default 320), A9S_BENCH_RUNS (rounds, default 5),
# A9S_BENCH_JOBS (a9s-pgrestore --jobs values for the pgrestore case, default "1 2"), A9S_BENCH_PIPE_JOBS
# (default 2), A9S_BENCH_PART_MB (part size, default 64), A9S_BENCH_CASES (default "psql pgrestore runbook pipe"),
# A9S_BENCH_WORK, A9S_BENCH_PGCONF, A9S_BENCH_SKIP_BUILD=1.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init recovery
START=$(now)

MB=${A9S_BENCH_MB:-320}
RUNS=${A9S_BENCH_RUNS:-5}
JOBS_LIST=${A9S_BENCH_JOBS:-1 2}
PIPE_JOBS=${A9S_BENCH_PIPE_JOBS:-2}
PART_MB=${A9S_BENCH_PART_MB:-64}
CASES=${A9S_BENCH_CASES:-psql pgrestore runbook pipe}
UUID=5d1c8a3e-7f42-4b8e-9d61-2a9c0f3b7e15
ID=$UUID-1700000000000
BUCKET=a9s-bench-backups
TIME=/usr/bin/time

for v in MB RUNS PIPE_JOBS PART_MB; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "A9S_BENCH_$v=${!v}: expected a positive whole number"
done
for c in $CASES; do
    case $c in psql | pgrestore | runbook | pipe) ;; *) die "A9S_BENCH_CASES: unknown case $c (psql pgrestore runbook pipe)" ;; esac
done
for tool in gzip gunzip openssl split python3 du; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
need_postgres
need_gnu_time
need_moto_awscli

# --- our programs --------------------------------------------------------------------------------------------
mapfile -t failed < <(build_release a9s-decrypt a9s-pgrestore a9s-fetch)
is_real() { [ -x "$BIN/$1" ] && "$BIN/$1" --version 2>/dev/null | grep -q "^$1"; }
for p in a9s-decrypt a9s-pgrestore; do
    is_real "$p" || die "$BIN/$p is not built (cargo build --release -p $p; log: $LOGS/build-$p.log)"
done
for p in "${failed[@]}"; do
    [ -n "$p" ] && say "warning: $p did not build now; using the binary from an earlier build if there is one"
done
if "$BIN/a9s-pgrestore" --help 2>/dev/null | grep -q -- '--jobs'; then
    HAVE_JOBS=1
else
    HAVE_JOBS=0
    say "NOTE: a9s-pgrestore has no --jobs option yet: every a9s-pgrestore run is sequential (one session)"
    JOBS_LIST=1
fi
FETCH_OK=0
if is_real a9s-fetch && "$BIN/a9s-fetch" --help 2>/dev/null | grep -q -- '--latest' &&
    "$BIN/a9s-fetch" --help 2>/dev/null | grep -q -- '--endpoint-url'; then
    FETCH_OK=1
fi
pgrestore_jobs() { if [ "$HAVE_JOBS" = 1 ]; then echo "--jobs $1"; fi; }
# "a9s-pgrestore --jobs N", or plain "a9s-pgrestore" when it has no --jobs.
pgr() { if [ "$HAVE_JOBS" = 1 ]; then echo "a9s-pgrestore --jobs $1"; else echo a9s-pgrestore; fi; }

# --- the dump, and the backup made of it ---------------------------------------------------------------------
make_pg_dump "$MB"
DUMP_BYTES=$(stat -c %s "$PGDUMP")
BACKUP=$WORK/recovery-backup-${MB}MB-parts${PART_MB}M
KEY=$BACKUP/key
if [ ! -f "$BACKUP/done.v1" ]; then
    say "storing the dump the a9s way: gzip | openssl enc -aes256 -md md5 | split -b ${PART_MB}M"
    rm -rf "$BACKUP"
    mkdir -p "$BACKUP/parts"
    printf 'Wq3vZ8kR2pLx7NcY5tHd9sFb4JmG6aUe\n' >"$KEY"
    gzip -c "$PGDUMP" | openssl enc -aes256 -md md5 -pass "file:$KEY" 2>/dev/null |
        split -b "${PART_MB}M" -d -a 4 - "$BACKUP/parts/split."
    n=0
    for f in "$BACKUP/parts"/split.*; do mv "$f" "$BACKUP/parts/$ID-$n"; n=$((n + 1)); done
    size=$(du -cb "$BACKUP/parts"/* | tail -1 | cut -f1)
    printf '{"backup_id":"%s","instance_id":"%s","size":%s,"parts":%s,"encrypted":true,"compressed":"gzip"}\n' \
        "$ID" "$UUID" "$size" "$n" >"$BACKUP/parts/$ID.json"
    touch "$BACKUP/done.v1"
fi
parts=("$BACKUP/parts/$ID"-*)
NPARTS=${#parts[@]}
PARTS_BYTES=$(du -cb "$BACKUP/parts/$ID"-* | tail -1 | cut -f1)
say "dump $(mib "$DUMP_BYTES") MiB; backup $ID: $NPARTS part(s), $(mib "$PARTS_BYTES") MiB"

moto_start
aws --endpoint-url "$S3_ENDPOINT" s3 mb "s3://$BUCKET" >/dev/null
aws --endpoint-url "$S3_ENDPOINT" s3 cp --quiet --recursive "$BACKUP/parts" "s3://$BUCKET/"
say "uploaded to s3://$BUCKET on $S3_ENDPOINT (moto)"

RUN=$WORK/recovery-run
declare -A T RSS
RSS_ORDER=()
rss_add() { # rss_add NAME FILE: keep the largest peak RSS (KiB) seen for NAME
    local v
    v=$(tail -1 "$2")
    [[ $v =~ ^[0-9]+$ ]] || die "no peak RSS for $1 in $2"
    [ -n "${RSS[$1]:-}" ] || RSS_ORDER+=("$1")
    RSS[$1]=$(maxof "${RSS[$1]:-0}" "$v")
}
t_add() { T[$1]="${T[$1]:-} $2"; }

# psql reports errors on stderr and exits 0 all the same: only pg_dumpall's CREATE ROLE of the bootstrap
# superuser may fail.
check_psql_errors() {
    local bad
    bad=$(grep 'ERROR:' "$1" | grep -v 'role "postgres" already exists' || true)
    [ -z "$bad" ] || die "psql reported errors (see $1): $(echo "$bad" | head -3)"
}

run_psql() {
    pg_start target
    local t0 t1
    t0=$(now)
    "$TIME" -f %M -o "$LOGS/rss-psql.txt" "$PG_BIN/psql" --quiet -X "${PGARGS[@]}" postgres <"$PGDUMP" \
        >/dev/null 2>"$LOGS/psql.err" || die "psql failed (see $LOGS/psql.err)"
    t1=$(now)
    check_psql_errors "$LOGS/psql.err"
    check_restore psql "$PGDUMP_FINGERPRINT"
    pg_stop
    rss_add psql "$LOGS/rss-psql.txt"
    t_add psql "$(calc "$t1 - $t0")"
    printf '  %-32s %7.2f s\n' "psql < dump" "$(calc "$t1 - $t0")" >&2
}

run_pgrestore() {
    local j=$1 t0 t1 rc=0
    pg_start target
    t0=$(now)
    # shellcheck disable=SC2046
    "$TIME" -f %M -o "$LOGS/rss-pgrestore-$j.txt" "$BIN/a9s-pgrestore" $(pgrestore_jobs "$j") "${PGARGS[@]}" \
        -d postgres --json-summary "$LOGS/pgrestore-$j.json" "$PGDUMP" 2>"$LOGS/pgrestore-$j.err" || rc=$?
    t1=$(now)
    [ "$rc" = 0 ] || die "$(pgr "$j") exited $rc (see $LOGS/pgrestore-$j.err)"
    check_restore "a9s-pgrestore-jobs$j" "$PGDUMP_FINGERPRINT"
    pg_stop
    rss_add "$(pgr "$j") (dump file)" "$LOGS/rss-pgrestore-$j.txt"
    t_add "pgrestore$j" "$(calc "$t1 - $t0")"
    printf '  %-32s %7.2f s\n' "$(pgr "$j") dump" "$(calc "$t1 - $t0")" >&2
}

run_runbook() {
    local t0 t1 t2 t3 disk files
    pg_start target
    rm -rf "$RUN"
    mkdir -p "$RUN"
    disk_watch_start "$RUN"
    t0=$(now)
    "$TIME" -f %M -o "$LOGS/rss-aws.txt" aws --endpoint-url "$S3_ENDPOINT" s3 cp --quiet --recursive \
        --exclude '*' --include "$ID*" "s3://$BUCKET" "$RUN/backup" || die "aws s3 cp failed"
    t1=$(now)
    # The runbook's words, `cat $(ls -1v …)` and all.
    # shellcheck disable=SC2046,SC2002
    cat $(ls -1v "$RUN/backup/$ID"-*) |
        "$TIME" -f %M -o "$LOGS/rss-openssl.txt" openssl enc -aes256 -md md5 -d -pass "file:$KEY" 2>"$LOGS/openssl.err" |
        "$TIME" -f %M -o "$LOGS/rss-gunzip.txt" gunzip -c >"$RUN/backup.dump" ||
        die "cat | openssl enc -d | gunzip failed (see $LOGS/openssl.err)"
    t2=$(now)
    "$TIME" -f %M -o "$LOGS/rss-psql.txt" "$PG_BIN/psql" --quiet -X "${PGARGS[@]}" postgres <"$RUN/backup.dump" \
        >/dev/null 2>"$LOGS/runbook-psql.err" || die "psql failed (see $LOGS/runbook-psql.err)"
    t3=$(now)
    disk=$(disk_watch_stop)
    files=$(du -cb "$RUN/backup"/* "$RUN/backup.dump" | tail -1 | cut -f1)
    cmp -s "$RUN/backup.dump" "$PGDUMP" || die "the runbook's decrypted dump differs from the original"
    check_psql_errors "$LOGS/runbook-psql.err"
    check_restore runbook "$PGDUMP_FINGERPRINT"
    pg_stop
    rm -rf "$RUN"
    for p in aws openssl gunzip psql; do rss_add "$p" "$LOGS/rss-$p.txt"; done
    t_add runbook "$(calc "$t3 - $t0")"
    t_add runbook_dl "$(calc "$t1 - $t0")"
    t_add runbook_dec "$(calc "$t2 - $t1")"
    t_add runbook_psql "$(calc "$t3 - $t2")"
    DISK_RUNBOOK=$(maxof "${DISK_RUNBOOK:-0}" "$disk")
    FILES_RUNBOOK=$files
    printf '  %-32s %7.2f s (download %.2f, decrypt %.2f, psql %.2f; peak extra disk %s MiB)\n' \
        runbook "$(calc "$t3 - $t0")" "$(calc "$t1 - $t0")" "$(calc "$t2 - $t1")" "$(calc "$t3 - $t2")" "$(mib "$disk")" >&2
}

run_pipe() {
    local t0 t1 disk rc
    [ "$FETCH_OK" = 1 ] || die "the pipe needs a9s-fetch with --latest and --endpoint-url, and $BIN/a9s-fetch \
is not built or lacks them (cargo build --release -p a9s-fetch; log: $LOGS/build-a9s-fetch.log)"
    pg_start target
    rm -rf "$RUN"
    mkdir -p "$RUN"
    disk_watch_start "$RUN"
    t0=$(now)
    set +e
    # shellcheck disable=SC2046
    (cd "$RUN" &&
        "$TIME" -f %M -o "$LOGS/rss-fetch.txt" "$BIN/a9s-fetch" --endpoint-url "$S3_ENDPOINT" --latest \
            "s3://$BUCKET/$UUID" -o - 2>"$LOGS/fetch.err" |
        "$TIME" -f %M -o "$LOGS/rss-decrypt.txt" "$BIN/a9s-decrypt" --pass "file:$KEY" 2>"$LOGS/decrypt.err" |
        "$TIME" -f %M -o "$LOGS/rss-pipe-pgrestore.txt" "$BIN/a9s-pgrestore" $(pgrestore_jobs "$PIPE_JOBS") \
            "${PGARGS[@]}" -d postgres --json-summary "$LOGS/pipe-pgrestore.json" 2>"$LOGS/pipe-pgrestore.err"
        st=("${PIPESTATUS[@]}")
        [ "${st[*]}" = "0 0 0" ] || {
            echo "exit statuses: a9s-fetch ${st[0]}, a9s-decrypt ${st[1]}, a9s-pgrestore ${st[2]}"
            exit 1
        }) >"$LOGS/pipe.status"
    rc=$?
    set -e
    t1=$(now)
    disk=$(disk_watch_stop)
    [ "$rc" = 0 ] || die "the pipe failed: $(cat "$LOGS/pipe.status") (see $LOGS/fetch.err, decrypt.err, pipe-pgrestore.err)"
    check_restore pipe "$PGDUMP_FINGERPRINT"
    pg_stop
    rm -rf "$RUN"
    rss_add a9s-fetch "$LOGS/rss-fetch.txt"
    rss_add a9s-decrypt "$LOGS/rss-decrypt.txt"
    rss_add "$(pgr "$PIPE_JOBS") (pipe)" "$LOGS/rss-pipe-pgrestore.txt"
    t_add pipe "$(calc "$t1 - $t0")"
    DISK_PIPE=$(maxof "${DISK_PIPE:-0}" "$disk")
    printf '  %-32s %7.2f s (a9s-fetch | a9s-decrypt | %s; peak extra disk %s MiB)\n' pipe \
        "$(calc "$t1 - $t0")" "$(pgr "$PIPE_JOBS")" "$(mib "$disk")" >&2
}

say "$RUNS round(s) of: $CASES; machine: $(machine_info)"
for i in $(seq 1 "$RUNS"); do
    say "round $i of $RUNS"
    for c in $CASES; do
        case $c in
        psql) run_psql ;;
        pgrestore) for j in $JOBS_LIST; do run_pgrestore "$j"; done ;;
        runbook) run_runbook ;;
        pipe) run_pipe ;;
        esac
    done
done
moto_stop

# --- report --------------------------------------------------------------------------------------------------
# shellcheck disable=SC2086 # T[x] is a space-separated list of times
med() { median ${T[$1]}; }
has() { [ -n "${T[$1]:-}" ]; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "met" : "NOT met" }'; }
JOBS_NOTE=""
[ "$HAVE_JOBS" = 1 ] || JOBS_NOTE=" (a9s-pgrestore has no --jobs yet: sequential)"

echo
echo "whole-recovery benchmark: pg_dumpall $(mib "$DUMP_BYTES") MiB (pgbench + wide_orders), backup $NPARTS part(s) \
$(mib "$PARTS_BYTES") MiB, $RUNS run(s) per case, median wall times; machine: $(machine_info)"
if has psql; then printf '  %-58s %8.2f s\n' "psql --quiet -X postgres < dump" "$(med psql)"; fi
for j in $JOBS_LIST; do
    if has "pgrestore$j"; then
        printf '  %-58s %8.2f s\n' "$(pgr "$j") -d postgres dump" "$(med "pgrestore$j")"
    fi
done
if has runbook; then
    printf '  %-58s %8.2f s (download %.2f, decrypt %.2f, psql %.2f)\n' "runbook: aws s3 cp; cat|openssl|gunzip > dump; psql" \
        "$(med runbook)" "$(med runbook_dl)" "$(med runbook_dec)" "$(med runbook_psql)"
fi
if has pipe; then
    printf '  %-58s %8.2f s\n' "a9s-fetch | a9s-decrypt | $(pgr "$PIPE_JOBS")" "$(med pipe)"
fi

echo "ratios (ours / documented):"
if has psql; then
    for j in $JOBS_LIST; do
        has "pgrestore$j" || continue
        target=1.0
        [ "$j" -ge 2 ] && target=0.85
        r=$(calc "$(med "pgrestore$j") / $(med psql)")
        printf '  %-40s %.3f (target <= %s: %s)%s\n' "$(pgr "$j") / psql:" "$r" "$target" \
            "$(verdict "$r" "$target")" "$JOBS_NOTE"
        label="\`$(pgr "$j")\` vs \`psql --quiet postgres < dump\`"
        [ "$HAVE_JOBS" = 1 ] || label="\`a9s-pgrestore\` (no --jobs yet) vs \`psql --quiet postgres < dump\`"
        bench_result "$label, pg_dumpall of $(mib "$DUMP_BYTES") MiB" "$(med psql)" "$(med "pgrestore$j")" "$target"
    done
fi
if has runbook && has pipe; then
    r=$(calc "$(med pipe) / $(med runbook)")
    printf '  %-40s %.3f (target <= 0.7: %s)%s\n' "whole pipe / runbook procedure:" "$r" "$(verdict "$r" 0.7)" "$JOBS_NOTE"
    bench_result "whole recovery from S3: \`a9s-fetch --latest | a9s-decrypt | $(pgr "$PIPE_JOBS")\` vs \
\`aws s3 cp\`; \`cat | openssl enc -d | gunzip -c > dump\`; \`psql < dump\` ($(mib "$DUMP_BYTES") MiB dump)" \
        "$(med runbook)" "$(med pipe)" 0.7 \
        "peak extra disk: runbook $(mib "$DISK_RUNBOOK") MiB, pipe $(mib "$DISK_PIPE") MiB"
fi

echo "peak memory (RSS, largest over the runs):"
for k in "${RSS_ORDER[@]}"; do
    printf '  %-40s %8.1f MiB\n' "$k" "$(calc "${RSS[$k]} / 1024")"
done

if has runbook || has pipe; then
    echo "peak extra disk (du -sb of the procedure's working directory every 0.2 s, growth over its start):"
    if has runbook; then
        printf '  runbook: %s MiB measured; downloaded parts + dump file = %s MiB\n' "$(mib "$DISK_RUNBOOK")" "$(mib "$FILES_RUNBOOK")"
    fi
    if has pipe; then printf '  pipe:    %s MiB measured (nothing is written but the database)\n' "$(mib "$DISK_PIPE")"; fi
fi
say "done in $(printf '%.0f' "$(calc "$(now) - $START")") s; logs in $LOGS"
