# shellcheck shell=bash disable=SC2034 # globals (BIN, PG_PORT, S3_ENDPOINT…) are for the scripts that source this
# Shared helpers of the benchmark scripts (sourced, not run). Bash only; the caller sets `set -euo pipefail`.
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init recovery          # ROOT, WORK, BIN, LOGS; messages prefixed "recovery.sh:"
#
# Throwaway PostgreSQL 15 clusters (run as the `postgres` user when we are root, as the tests do), a moto S3
# server on loopback, the pg_dumpall the PostgreSQL benchmarks share, per-table fingerprints to check that a
# restore is complete before its time means anything, and the result rows bench/run turns into the README table.
#
# Environment (all optional):
#   A9S_BENCH_WORK      work directory (default bench/work, gitignored); generated data is cached there
#   A9S_BENCH_MB        size of the pg_dumpall in MiB (default 320: the issues ask for at least 300 MB)
#   A9S_BENCH_RUNS      runs of each case (each script has its default: 3 to 5); medians are reported
#   A9S_BENCH_PGCONF    extra postgresql.conf lines for every cluster, separated by newlines or ';'
#   A9S_BENCH_RESULTS   file that result rows are appended to (bench/run sets it)
#   A9S_BENCH_SKIP_BUILD=1  use the binaries already built (in target/release, or A9S_BENCH_BIN)

PG_BIN=/usr/lib/postgresql/15/bin

bench_init() {
    BENCH_NAME=$1
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    WORK=${A9S_BENCH_WORK:-$ROOT/bench/work}
    BIN=${A9S_BENCH_BIN:-$ROOT/target/release}
    LOGS=$WORK/logs/$BENCH_NAME
    mkdir -p "$WORK" "$LOGS"
    WORK=$(cd "$WORK" && pwd)
    LOGS=$WORK/logs/$BENCH_NAME
    # Our programs and the reference tools must not pick up the caller's libpq or AWS settings.
    unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGPASSFILE PGDATABASE PGSSLMODE PGAPPNAME PGOPTIONS \
        PGSERVICE PGSERVICEFILE PGCLIENTENCODING AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL \
        AWS_ENDPOINT_URL_S3 AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
    BENCH_CLUSTERS=()
    BENCH_PIDS=()
    trap bench_cleanup EXIT
    trap 'say "interrupted"; exit 130' INT TERM
}

say() { echo "$BENCH_NAME.sh: $*" >&2; }
die() { echo "$BENCH_NAME.sh: $*" >&2; exit 1; }

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
# Median of the arguments (numbers).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk "BEGIN { printf \"%.1f\", $1 / 1048576 }"; }
# Largest of the arguments (integers).
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }

is_root() { [ "$(id -u)" = 0 ]; }
as_postgres() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

need_gnu_time() {
    if [ ! -x /usr/bin/time ]; then
        say "installing GNU time (Debian package time) for the peak RSS figures"
        apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
    fi
}

need_postgres() {
    if [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pgbench" ]; then
        die "PostgreSQL 15 is missing: apt-get install postgresql-15 postgresql-contrib (scripts/test installs them)"
    fi
    id postgres >/dev/null 2>&1 || die "there is no postgres user to run the server as: install postgresql-15"
}

need_moto_awscli() {
    if ! python3 -c 'import moto.server, boto3, flask' 2>/dev/null || ! command -v aws >/dev/null; then
        say "installing moto[server] boto3 awscli from PyPI"
        python3 -m pip install -q --disable-pip-version-check 'moto[server]' boto3 awscli ||
            python3 -m pip install -q --disable-pip-version-check --break-system-packages 'moto[server]' boto3 awscli
        hash -r
    fi
    command -v aws >/dev/null || die "aws (awscli) is not on PATH after pip install awscli"
}

# Builds release binaries of the given crates, one by one so that a crate that does not build (yet) is named.
# Prints the crates that failed (their log is in $LOGS/build-<crate>.log); returns 0 in any case.
build_release() {
    local c failed=()
    if [ "${A9S_BENCH_SKIP_BUILD:-}" = 1 ]; then return 0; fi
    for c in "$@"; do
        say "building $c (release)"
        if ! (cd "$ROOT" && cargo build --release -q -p "$c") >"$LOGS/build-$c.log" 2>&1; then
            failed+=("$c")
            say "cargo build --release -p $c failed (see $LOGS/build-$c.log)"
        fi
    done
    printf '%s\n' "${failed[@]}"
}

# --- result rows for bench/run -------------------------------------------------------------------------------
# bench_result COMPARISON DOCUMENTED_SECONDS OURS_SECONDS TARGET_RATIO [NOTE]
# Appends one tab-separated row to $A9S_BENCH_RESULTS (if set): bench/run prints them as README table rows.
bench_result() {
    local ratio
    ratio=$(calc "$3 / $2")
    if [ -n "${A9S_BENCH_RESULTS:-}" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$ratio" "$4" "${5:-}" >>"$A9S_BENCH_RESULTS"
    fi
}

# --- cleanup -------------------------------------------------------------------------------------------------
bench_cleanup() {
    local rc=$? d p
    for p in "${BENCH_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for d in "${BENCH_CLUSTERS[@]}"; do
        if [ -f "$d/data/postmaster.pid" ]; then
            as_postgres "$PG_BIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$d"
    done
    return $rc
}

forget_pid() {
    local p keep=()
    for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

# --- PostgreSQL clusters -------------------------------------------------------------------------------------
# pg_start NAME: initdb and start a fresh cluster in $WORK/clusters/NAME (removed first if there), listening on
# 127.0.0.1 and a Unix socket on a free port. Sets PG_DIR, PG_PORT, PG_SOCK and PGARGS (psql-style -h -p -U).
pg_start() {
    PG_DIR=$WORK/clusters/$1
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    mkdir -p "$PG_DIR/sock"
    BENCH_CLUSTERS+=("$PG_DIR")
    if is_root; then chown -R postgres:postgres "$PG_DIR"; fi
    as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-sync --locale=C -E UTF8 \
        >"$PG_DIR/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$PG_DIR/initdb.log")"
    local extra
    extra=$(printf '%s\n' "${A9S_BENCH_PGCONF:-}" | tr ';' '\n')
    for _ in 1 2 3 4 5; do
        PG_PORT=$(free_port)
        # The same settings as the test clusters (durability off: disk speed is not what is compared), a
        # shared_buffers that holds the working set and checkpoints kept out of the way of a bulk load.
        as_postgres tee -a "$PG_DIR/data/postgresql.conf" >/dev/null <<EOF

# a9s bench
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
max_connections = 50
$extra
EOF
        if as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null 2>&1; then
            PG_SOCK=$PG_DIR/sock
            PGARGS=(-h "$PG_SOCK" -p "$PG_PORT" -U postgres)
            return 0
        fi
    done
    die "PostgreSQL did not start in $PG_DIR: $(tail -3 "$PG_DIR/server.log" 2>/dev/null)"
}

# pg_stop: stop and delete the cluster pg_start made last.
pg_stop() {
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    local d keep=()
    for d in "${BENCH_CLUSTERS[@]}"; do [ "$d" = "$PG_DIR" ] || keep+=("$d"); done
    BENCH_CLUSTERS=("${keep[@]}")
}

psql_() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "${PGARGS[@]}" "$@"; }

# pg_fingerprint: one line per user table of every database of the running cluster:
# `db<TAB>schema.table<TAB>rows<TAB>order-independent checksum of the rows`, plus a line with the number of
# indexes, constraints and functions per database. Two restores of one dump must print the same.
pg_fingerprint() {
    local db
    psql_ -At -d postgres -c "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1" |
        while IFS= read -r db; do
            psql_ -At -F $'\t' -d "$db" <<'SQL' | sed "s/^/$db\t/"
SET timezone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SELECT format('SELECT %L, count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM %I.%I t',
              n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1
\gexec
SELECT '(indexes, constraints, functions)',
       (SELECT count(*) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')),
       (SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')),
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'));
SQL
        done
}

# check_restore LABEL REFERENCE_FILE: the running cluster must hold exactly what the reference fingerprint
# says; otherwise stop the benchmark (a fast broken restore is no result).
check_restore() {
    local got=$LOGS/fingerprint-$1.txt
    pg_fingerprint >"$got"
    if ! diff -q "$2" "$got" >/dev/null; then
        say "the restore by $1 differs from the source database (tables: rows, checksum):"
        { diff "$2" "$got" || true; } | head -20 >&2
        die "not reporting the time of a broken restore; see $got and the logs in $LOGS"
    fi
}

# --- the a9s-pgrestore benchmarks' common start ----------------------------------------------------------------
# pgrestore_bench_setup: PostgreSQL there, a9s-pgrestore built (release), the shared pg_dumpall made; sets MB,
# RUNS (default 3), PGDUMP, PGDUMP_FINGERPRINT and SIZE (the dump's bytes).
pgrestore_bench_setup() {
    need_postgres
    MB=${A9S_BENCH_MB:-320}
    RUNS=${A9S_BENCH_RUNS:-3}
    local failed
    mapfile -t failed < <(build_release a9s-pgrestore)
    [ "${#failed[@]}" -eq 0 ] || [ -z "${failed[0]}" ] || die "a9s-pgrestore does not build"
    make_pg_dump "$MB"
    SIZE=$(stat -c %s "$PGDUMP")
}

# --- the pg_dumpall the PostgreSQL benchmarks share ---------------------------------------------------------
# make_pg_dump MB: makes (once; cached under $WORK/pgdump-<MB>MB) a pg_dumpall of a throwaway source cluster
# holding database `bench` with pgbench's tables (about 60 % of the size) and a wide table `wide_orders`
# (13 columns of mixed types, a primary key and four more indexes). Sets PGDUMP (the script) and
# PGDUMP_FINGERPRINT (pg_fingerprint of the source: what every restore must reproduce).
make_pg_dump() {
    local mb=$1 dir scale rows
    dir=$WORK/pgdump-${mb}MB
    PGDUMP=$dir/dump.sql
    PGDUMP_FINGERPRINT=$dir/fingerprint.txt
    if [ -f "$dir/done.v1" ]; then
        say "reusing the pg_dumpall in $dir ($(mib "$(stat -c %s "$PGDUMP")") MiB)"
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    # pgbench_accounts dumps to about 9.05 MiB per unit of scale; a wide_orders row to about 263 bytes.
    scale=$(awk -v mb="$mb" 'BEGIN { s = int(mb * 0.6 / 9.05 + 0.5); print (s < 1) ? 1 : s }')
    rows=$(awk -v mb="$mb" -v s="$scale" 'BEGIN { r = int((mb - s * 9.05) * 1048576 / 263); print (r < 1000) ? 1000 : r }')
    say "building a ${mb} MB pg_dumpall: pgbench scale $scale plus $rows rows of wide_orders (once; cached in $dir)"
    pg_start source
    psql_ -d postgres -c "CREATE DATABASE bench" >/dev/null
    "$PG_BIN/pgbench" -i -q -s "$scale" "${PGARGS[@]}" bench >"$dir/pgbench.log" 2>&1 ||
        die "pgbench -i failed: $(tail -3 "$dir/pgbench.log")"
    psql_ -d bench -v rows="$rows" >/dev/null <<'SQL'
SELECT setseed(0.42);
CREATE TABLE public.wide_orders (
    id bigint PRIMARY KEY,
    customer text NOT NULL,
    email text NOT NULL,
    amount numeric(12,2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    shipped_at timestamptz,
    token uuid NOT NULL,
    note text,
    tags text[],
    attrs jsonb,
    score double precision,
    branch int REFERENCES public.pgbench_branches (bid)
);
INSERT INTO public.wide_orders
SELECT g,
       (ARRAY['Anna','Bert','Carla','Dieter','Émile','Frieda','Gustav','Hanna'])[1 + g % 8] || ' ' ||
           (ARRAY['Müller','Schmidt','Schneider','Fischer','Weber','Meyer','Wagner'])[1 + g % 7] || ' ' || (g % 9973),
       'user' || (g::bigint * 7919 % 1000003) || '@example.com',
       round((random() * 10000)::numeric, 2),
       (ARRAY['pending','paid','shipped','cancelled','refunded'])[1 + (random() * 4)::int],
       timestamptz '2019-01-01 00:00:00+00' + g * interval '7 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2019-01-02 00:00:00+00' + g * interval '7 seconds' END,
       md5(g::text || 'token')::uuid,
       CASE WHEN g % 4 = 0 THEN NULL ELSE E'call ahead\tgate ' || (g % 50) || ', ' || md5(g::text) END,
       ARRAY['t' || (g % 10), 't' || (g % 7)],
       jsonb_build_object('channel', (ARRAY['web','app','phone'])[1 + g % 3], 'items', 1 + g % 9,
                          'ref', substr(md5((g * 3)::text), 1, 12)),
       random() * 100,
       1 + g % (SELECT count(*) FROM public.pgbench_branches)::int
FROM generate_series(1, :rows) g;
CREATE INDEX wide_orders_email ON public.wide_orders (email);
CREATE INDEX wide_orders_created_at ON public.wide_orders (created_at);
CREATE INDEX wide_orders_status_amount ON public.wide_orders (status, amount);
CREATE INDEX wide_orders_customer ON public.wide_orders (customer);
SQL
    as_postgres "$PG_BIN/pg_dumpall" -h "$PG_SOCK" -p "$PG_PORT" -U postgres >"$PGDUMP" ||
        die "pg_dumpall failed"
    pg_fingerprint >"$PGDUMP_FINGERPRINT"
    pg_stop
    touch "$dir/done.v1"
    say "pg_dumpall: $(mib "$(stat -c %s "$PGDUMP")") MiB"
}

# --- moto S3 server ------------------------------------------------------------------------------------------
# moto_start: a moto server on 127.0.0.1 and a free port; sets S3_ENDPOINT and the AWS environment (dummy
# credentials, no profiles, no instance metadata lookups) for aws and a9s-fetch.
moto_start() {
    local port i
    port=$(free_port)
    python3 -m moto.server -H 127.0.0.1 -p "$port" >"$LOGS/moto.log" 2>&1 &
    MOTO_PID=$!
    BENCH_PIDS+=("$MOTO_PID")
    for i in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        kill -0 "$MOTO_PID" 2>/dev/null || die "moto server exited: $(tail -3 "$LOGS/moto.log")"
        sleep 0.1
        [ "$i" = 300 ] && die "moto server did not listen on 127.0.0.1:$port within 30 s"
    done
    S3_ENDPOINT=http://127.0.0.1:$port
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/nonexistent/a9s-bench/config
    export AWS_SHARED_CREDENTIALS_FILE=/nonexistent/a9s-bench/credentials
}

moto_stop() {
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    forget_pid "$MOTO_PID"
}

# --- peak disk use -------------------------------------------------------------------------------------------
# disk_watch_start DIR: samples `du -sb DIR` every 0.2 s in the background; disk_watch_stop prints the peak
# growth over the size DIR had at the start, in bytes.
disk_watch_start() {
    DISK_DIR=$1
    DISK_OUT=$LOGS/disk-peak.txt
    DISK_BASE=$(du -sb "$DISK_DIR" | cut -f1)
    echo "$DISK_BASE" >"$DISK_OUT"
    (
        max=$DISK_BASE
        while :; do
            s=$(du -sb "$DISK_DIR" 2>/dev/null | cut -f1) || s=0
            if [ -n "$s" ] && [ "$s" -gt "$max" ]; then max=$s; echo "$max" >"$DISK_OUT"; fi
            sleep 0.2
        done
    ) &
    DISK_PID=$!
    BENCH_PIDS+=("$DISK_PID")
}

disk_watch_stop() {
    local s
    # One last sample, so that what is still on disk at the end counts even between two samples.
    s=$(du -sb "$DISK_DIR" | cut -f1)
    kill "$DISK_PID" 2>/dev/null || true
    wait "$DISK_PID" 2>/dev/null || true
    forget_pid "$DISK_PID"
    s=$(maxof "$s" "$(cat "$DISK_OUT")")
    echo $((s - DISK_BASE))
}

# --- the machine ---------------------------------------------------------------------------------------------
machine_info() {
    local cpu mem pgv
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    pgv=$("$PG_BIN/postgres" --version 2>/dev/null | awk '{ print $3 }')
    echo "$(nproc) cores (${cpu:-unknown CPU}), $mem RAM, Linux $(uname -r)${pgv:+, PostgreSQL $pgv}"
}
