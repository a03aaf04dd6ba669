#!/usr/bin/env bash
# Offline benchmark: `a9s-cat-parts parts | a9s-decrypt` against the runbook's
# `cat $(ls -1v parts) | openssl enc -aes256 -md md5 -d -pass … | gunzip -c`, on a dump-like text of at least
# 300 MB stored the a9s way (gzip | openssl enc -aes256 -md md5 | split -b 64M into <backup-id>-<n>).
#
# Not part of the test suite. Prints the median wall time of each side over alternating runs, their ratio
# (target: at most 0.40) and the peak RSS of a9s-decrypt.
#
# Environment: A9S_BENCH_WORK (work dir, default bench/work; the generated backup is kept there and reused),
# A9S_BENCH_MB (size of the dump text, default 320), A9S_BENCH_RUNS (runs per side, default 5).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${A9S_BENCH_WORK:-$ROOT/bench/work}
MB=${A9S_BENCH_MB:-320}
RUNS=${A9S_BENCH_RUNS:-5}
ID=b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154

for tool in gzip gunzip openssl split awk; do
    command -v "$tool" >/dev/null || { echo "offline.sh: $tool is needed" >&2; exit 2; }
done
if [ ! -x /usr/bin/time ]; then
    echo "offline.sh: installing GNU time for the peak RSS figure" >&2
    apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time; }
fi

echo "== building release binaries" >&2
(cd "$ROOT" && cargo build --release -q -p a9s-decrypt)
# a9s-cat-parts may not be written yet: use it when it builds and is the real program, else plain cat.
(cd "$ROOT" && cargo build --release -q -p a9s-cat-parts 2>/dev/null) || true
BIN=$ROOT/target/release
if "$BIN/a9s-cat-parts" --version 2>/dev/null | grep -q a9s-cat-parts; then
    FEED="$BIN/a9s-cat-parts"
    FEED_NAME=a9s-cat-parts
else
    FEED=cat_ls_v
    FEED_NAME='cat $(ls -1v …) (a9s-cat-parts not built yet)'
fi
cat_ls_v() { cat $(ls -1v "$@"); }

mkdir -p "$WORK"
cd "$WORK"
STAMP="dump-${MB}MB.v1"
if [ ! -f "$STAMP" ]; then
    echo "== generating a ${MB} MB dump-like text and storing it the a9s way in $WORK" >&2
    rm -rf parts dump.txt key ./*.v1
    # The secret: a 32-character one like the Backup Manager's; in a file, as the runbook's pass: is unsafe.
    printf 'NYHD8MVmA55HEqoaYHpQaxfwEMcQ1wkI\n' > key
    # COPY rows as pg_dumpall writes them; awk's rand() with a fixed seed keeps it deterministic.
    awk -v target=$((MB * 1024 * 1024)) 'BEGIN {
        srand(42);
        n = split("anna bert carla dieter emil frieda gustav hanna ingo julia klaus lena max nina otto paula quirin rosa stefan tina", first, " ");
        m = split("mueller schmidt schneider fischer weber meyer wagner becker schulz hoffmann koch richter klein wolf neumann", last, " ");
        k = split("pending paid shipped cancelled refunded", st, " ");
        bytes = 0; i = 0; t = 0;
        while (bytes < target) {
            t++;
            head = sprintf("COPY public.orders_%d (id, customer, email, amount, status, created_at, token, note) FROM stdin;", t);
            print head; bytes += length(head) + 1;
            for (r = 0; r < 200000 && bytes < target; r++) {
                i++;
                f = first[int(rand() * n) + 1]; l = last[int(rand() * m) + 1];
                line = sprintf("%d\t%s %s\t%s.%s%d@example.com\t%d.%02d\t%s\t2019-%02d-%02d %02d:%02d:%02d.%06d+00\t%08x%08x\t%s",
                    i, f, l, f, l, int(rand() * 1000), int(rand() * 5000), int(rand() * 100), st[int(rand() * k) + 1],
                    int(rand() * 12) + 1, int(rand() * 28) + 1, int(rand() * 24), int(rand() * 60), int(rand() * 60),
                    int(rand() * 1000000), int(rand() * 4294967295), int(rand() * 4294967295),
                    (rand() < 0.7 ? "\\N" : "customer asked for delivery before noon, call ahead"));
                print line; bytes += length(line) + 1;
            }
            print "\\."; print ""; bytes += 3;
        }
    }' > dump.txt
    mkdir parts
    gzip -c dump.txt | openssl enc -aes256 -md md5 -pass file:key 2>/dev/null | split -b 64M -d -a 3 - parts/split.
    n=0
    for f in $(ls parts/split.* | sort); do mv "$f" "parts/$ID-$n"; n=$((n + 1)); done
    sha256sum < dump.txt > dump.sha256
    touch "$STAMP"
fi
echo "== dump: $(($(stat -c %s dump.txt) / 1048576)) MiB, backup: $(ls parts | wc -l) parts, $(($(du -cb parts/* | tail -1 | cut -f1) / 1048576)) MiB" >&2

# Both sides must give the same bytes before their times mean anything.
ours=$($FEED parts/* | "$BIN/a9s-decrypt" --pass file:key | sha256sum)
theirs=$(cat $(ls -1v parts/*) | openssl enc -aes256 -md md5 -d -pass file:key 2>/dev/null | gunzip -c | sha256sum)
[ "$ours" = "$(cat dump.sha256)" ] && [ "$theirs" = "$ours" ] || { echo "offline.sh: outputs differ" >&2; exit 1; }

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
ours_t=() theirs_t=() rss=0
echo "== $RUNS runs each, alternating; feeder for a9s-decrypt: $FEED_NAME" >&2
for i in $(seq 1 "$RUNS"); do
    t0=$(now)
    $FEED parts/* | /usr/bin/time -f %M -o rss.txt "$BIN/a9s-decrypt" --pass file:key > /dev/null
    t1=$(now)
    cat $(ls -1v parts/*) | openssl enc -aes256 -md md5 -d -pass file:key 2>/dev/null | gunzip -c > /dev/null
    t2=$(now)
    a=$(calc "$t1 - $t0") b=$(calc "$t2 - $t1")
    ours_t+=("$a") theirs_t+=("$b")
    r=$(cat rss.txt)
    [ "$r" -gt "$rss" ] && rss=$r
    printf 'run %d: a9s %.3f s, runbook %.3f s, a9s-decrypt peak RSS %d KiB\n' "$i" "$a" "$b" "$r" >&2
done
rm -f rss.txt

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mo=$(median "${ours_t[@]}")
mt=$(median "${theirs_t[@]}")
mb=$(($(stat -c %s dump.txt) / 1048576))
printf 'dump %d MiB; median a9s-cat-parts | a9s-decrypt: %.3f s (%.0f MiB/s); median cat | openssl enc -d | gunzip -c: %.3f s (%.0f MiB/s)\n' \
    "$mb" "$mo" "$(calc "$mb / $mo")" "$mt" "$(calc "$mb / $mt")"
printf 'ratio (ours / runbook): %.3f (target <= 0.40); a9s-decrypt peak RSS: %.1f MiB\n' \
    "$(calc "$mo / $mt")" "$(calc "$rss / 1024")"
