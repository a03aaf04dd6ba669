#!/usr/bin/env bash
# a9s-pgrestore --checkpoint: a resumed restore against an uninterrupted one, on the pg_dumpall bench/pgrestore.sh
# uses (at least 300 MB; built once by bench/lib.sh's make_pg_dump and cached). Each round, into fresh clusters:
#
#   uninterrupted:  a9s-pgrestore --quiet --checkpoint C1 -d postgres dump            (timed: T)
#   interrupted:    a9s-pgrestore --quiet --checkpoint C2 -d postgres dump, the server killed (pg_ctl stop -m
#                   immediate) T/2 after the start, then started again on the same data directory;
#   resumed:        a9s-pgrestore --quiet --checkpoint C2 -d postgres dump            (timed: R)
#
# Both restores are checked against the source's per-table fingerprint. Prints the medians, where the resumes
# began, and the ratio R / T (target: at most 0.75). The clusters run with synchronous_commit = on: a checkpoint
# counts what the server acknowledged, which a killed server keeps only then (a9s-pgrestore warns otherwise).
#
# Environment: see bench/lib.sh (A9S_BENCH_MB, default 320; A9S_BENCH_RUNS, default 3; A9S_BENCH_WORK;
# A9S_BENCH_SKIP_BUILD).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_init resume
export A9S_BENCH_PGCONF="${A9S_BENCH_PGCONF:-};synchronous_commit = on"
pgrestore_bench_setup

T_FULL=()
T_RESUMED=()
SKIPPED=()
for i in $(seq 1 "$RUNS"); do
    rm -f "$WORK/resume-"*.ckpt*
    pg_start "resume-full"
    t0=$(now)
    "$BIN/a9s-pgrestore" --quiet "${PGARGS[@]}" -d postgres --checkpoint "$WORK/resume-full.ckpt" "$PGDUMP" \
        2>"$LOGS/run-$i-full.err" || die "a9s-pgrestore failed (status $?): $(tail -5 "$LOGS/run-$i-full.err")"
    t1=$(now)
    check_restore "full-$i" "$PGDUMP_FINGERPRINT"
    pg_stop
    full=$(calc "$t1 - $t0")
    T_FULL+=("$full")

    pg_start "resume-cut"
    ckpt=$WORK/resume-cut.ckpt
    "$BIN/a9s-pgrestore" --quiet "${PGARGS[@]}" -d postgres --checkpoint "$ckpt" "$PGDUMP" \
        2>"$LOGS/run-$i-cut.err" &
    pid=$!
    sleep "$(calc "$full / 2")"
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null
    status=0
    wait "$pid" || status=$?
    [ "$status" = 2 ] || die "the interrupted restore ended with $status, not 2: $(tail -3 "$LOGS/run-$i-cut.err")"
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null ||
        die "PostgreSQL did not start again: $(tail -3 "$PG_DIR/server.log")"
    t0=$(now)
    "$BIN/a9s-pgrestore" --quiet "${PGARGS[@]}" -d postgres --checkpoint "$ckpt" --json-summary "$LOGS/run-$i-resumed.json" \
        "$PGDUMP" 2>"$LOGS/run-$i-resumed.err" ||
        die "the resumed a9s-pgrestore failed (status $?): $(tail -5 "$LOGS/run-$i-resumed.err")"
    t1=$(now)
    check_restore "resumed-$i" "$PGDUMP_FINGERPRINT"
    pg_stop
    resumed=$(calc "$t1 - $t0")
    T_RESUMED+=("$resumed")
    skipped=$(python3 -c 'import json,sys; r = json.load(open(sys.argv[1]))["resume"]; print(r["skipped_bytes"], r["skip_seconds"])' \
        "$LOGS/run-$i-resumed.json")
    SKIPPED+=("$skipped")
    say "run $i: uninterrupted $(printf '%.2f' "$full") s; killed at $(printf '%.2f' "$(calc "$full / 2")") s, resumed after $(mib "${skipped% *}") MiB (skipping took ${skipped#* } s) in $(printf '%.2f' "$resumed") s"
done

MF=$(median "${T_FULL[@]}")
MR=$(median "${T_RESUMED[@]}")
RATIO=$(calc "$MR / $MF")
printf 'resume: %s MiB pg_dumpall, %d rounds: uninterrupted %.2f s, resumed after a kill at half-time %.2f s (medians); ratio %.3f (target <= 0.75)\n' \
    "$(mib "$SIZE")" "$RUNS" "$MF" "$MR" "$RATIO"
bench_result "a9s-pgrestore --checkpoint: resumed after a kill at half-time vs uninterrupted ($(mib "$SIZE") MiB)" "$MF" "$MR" 0.75
