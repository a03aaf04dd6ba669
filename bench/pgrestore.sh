#!/usr/bin/env bash
# psql versus a9s-pgrestore on the same pg_dumpall (pgbench data plus a wide table with five indexes, at least
# 300 MB; built once by bench/lib.sh's make_pg_dump and cached), each restore into a fresh PostgreSQL 15
# cluster, the two alternating, A9S_BENCH_RUNS times each:
#
#   psql --quiet -X postgres < dump            (the runbook's "Recover Backup")
#   a9s-pgrestore --quiet -d postgres dump
#
# Every restore is checked against the source's per-table fingerprint before its time counts. Prints the
# median wall times and the ratio a9s-pgrestore / psql (target: at most 1.0).
#
# Environment: see bench/lib.sh (A9S_BENCH_MB, default 320; A9S_BENCH_RUNS, default 3; A9S_BENCH_WORK;
# A9S_BENCH_SKIP_BUILD).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_init pgrestore
pgrestore_bench_setup

T_PSQL=()
T_A9S=()
for i in $(seq 1 "$RUNS"); do
    for tool in psql a9s-pgrestore; do
        pg_start "restore-$tool"
        t0=$(now)
        if [ "$tool" = psql ]; then
            "$PG_BIN/psql" --quiet -X "${PGARGS[@]}" postgres <"$PGDUMP" >/dev/null 2>"$LOGS/run-$i-psql.err"
        else
            "$BIN/a9s-pgrestore" --quiet "${PGARGS[@]}" -d postgres "$PGDUMP" 2>"$LOGS/run-$i-a9s.err" ||
                die "a9s-pgrestore failed (status $?): $(tail -5 "$LOGS/run-$i-a9s.err")"
        fi
        t1=$(now)
        check_restore "$tool-$i" "$PGDUMP_FINGERPRINT"
        pg_stop
        t=$(calc "$t1 - $t0")
        say "run $i: $(printf '%-13s %7.2f s' "$tool" "$t")"
        if [ "$tool" = psql ]; then T_PSQL+=("$t"); else T_A9S+=("$t"); fi
    done
done

MP=$(median "${T_PSQL[@]}")
MA=$(median "${T_A9S[@]}")
RATIO=$(calc "$MA / $MP")
printf 'pgrestore: %s MiB pg_dumpall, %d runs each: psql %.2f s, a9s-pgrestore %.2f s (medians); ratio %.3f (target <= 1.0)\n' \
    "$(mib "$SIZE")" "$RUNS" "$MP" "$MA" "$RATIO"
bench_result "a9s-pgrestore vs psql --quiet postgres < dump ($(mib "$SIZE") MiB)" "$MP" "$MA" 1.0
