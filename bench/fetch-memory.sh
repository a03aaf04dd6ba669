#!/usr/bin/env bash
# a9s-fetch's memory bound, measured (issue 12, point 8): the peak RSS (GNU time's %M) of
#
#   a9s-fetch --read-ahead R --chunk-size C s3://bucket/<id> -o - > /dev/null
#
# streaming a split backup of A9S_BENCH_FETCH_MB MiB (random bytes, parts of 64 MiB, with its metadata) from an
# S3 API server on loopback (moto), for each "R/C" pair in A9S_BENCH_FETCH_WINDOWS, and the bound a9s-fetch(1)
# documents for it: read-ahead + 2 chunks + the program's own base (the figure given in the man page). Prints
# the largest of A9S_BENCH_RUNS runs per pair and whether it is within the documented bound; exits 1 when one
# is not. Not part of the test suite.
#
# Environment (see also bench/lib.sh): A9S_BENCH_FETCH_MB (default 256), A9S_BENCH_RUNS (default 3),
# A9S_BENCH_FETCH_WINDOWS (default "8M/8M 64M/8M"), A9S_BENCH_FETCH_BASE_MIB (the base in the man page, default
# 16), A9S_BENCH_WORK, A9S_BENCH_SKIP_BUILD=1.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init fetch-memory

MB=${A9S_BENCH_FETCH_MB:-256}
RUNS=${A9S_BENCH_RUNS:-3}
WINDOWS=${A9S_BENCH_FETCH_WINDOWS:-8M/8M 64M/8M}
BASE_MIB=${A9S_BENCH_FETCH_BASE_MIB:-16}
UUID=5d1c8a3e-7f42-4b8e-9d61-2a9c0f3b7e15
ID=$UUID-1700000000000
BUCKET=a9s-bench-memory
TIME=/usr/bin/time

for v in MB RUNS BASE_MIB; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: expected a positive whole number"
done
need_gnu_time
need_moto_awscli
mapfile -t failed < <(build_release a9s-fetch)
[ -x "$BIN/a9s-fetch" ] || die "$BIN/a9s-fetch is not built (cargo build --release -p a9s-fetch)"

# A backup of random bytes (what an encrypted backup looks like), cached between runs.
DATA=$WORK/fetch-memory-$MB
if [ ! -f "$DATA/.done" ]; then
    say "making a $MB MiB backup in $DATA"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    head -c "$((MB << 20))" /dev/urandom | split -b 64M -d -a 1 - "$DATA/$ID-"
    echo '{"note":"benchmark"}' >"$DATA/$ID.json"
    touch "$DATA/.done"
fi

moto_start
aws --endpoint-url "$S3_ENDPOINT" s3 mb "s3://$BUCKET" >/dev/null
aws --endpoint-url "$S3_ENDPOINT" s3 cp --quiet --recursive --exclude '.done' "$DATA" "s3://$BUCKET/"
say "uploaded $MB MiB to s3://$BUCKET on $S3_ENDPOINT (moto)"

# SIZE like 8M or 64M in MiB.
to_mib() { echo "${1%[Mm]}"; }
status=0
for w in $WINDOWS; do
    ra=${w%/*}
    cs=${w#*/}
    peaks=()
    for _ in $(seq 1 "$RUNS"); do
        "$TIME" -f %M -o "$LOGS/rss.txt" "$BIN/a9s-fetch" --endpoint-url "$S3_ENDPOINT" --read-ahead "$ra" \
            --chunk-size "$cs" "s3://$BUCKET/$ID" -o - >/dev/null 2>"$LOGS/fetch.err" ||
            die "a9s-fetch failed: $(tail -1 "$LOGS/fetch.err")"
        peaks+=("$(tail -1 "$LOGS/rss.txt")")
    done
    peak_kib=$(maxof "${peaks[@]}")
    bound=$(($(to_mib "$ra") + 2 * $(to_mib "$cs") + BASE_MIB))
    verdict=within
    if [ "$peak_kib" -gt $((bound * 1024)) ]; then
        verdict="NOT within"
        status=1
    fi
    printf 'a9s-fetch --read-ahead %s --chunk-size %s: peak RSS %s MiB (largest of %s runs; %s MiB stream), %s the documented bound %s MiB (read-ahead + 2 chunks + %s MiB)\n' \
        "$ra" "$cs" "$(mib $((peak_kib * 1024)))" "$RUNS" "$MB" "$verdict" "$bound" "$BASE_MIB"
done
moto_stop
exit $status
