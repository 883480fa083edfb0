#!/usr/bin/env bash
# A/B of two quantd binaries on the same input, interleaved so that machine noise hits both alike: best and all
# of N wall-clock runs of `quantize` each (default 5). Used to check that a change costs nothing end to end:
#   scripts/ab-quantize.sh OLD_QUANTD NEW_QUANTD INPUT [quantize flags...]
# (build OLD from an earlier commit in a worktree: git worktree add /tmp/old REV && (cd /tmp/old && swift build -c release))
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OLD_QUANTD NEW_QUANTD INPUT [quantize flags...]" >&2; exit 64; }
old=$1 new=$2 input=$3
shift 3
runs=${RUNS:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$runs"); do
    for which in old new; do
        bin=$old; [ "$which" = new ] && bin=$new
        rm -rf "$out/q"
        start=$(date +%s.%N)
        "$bin" quantize "$input" -o "$out/q" "$@" >/dev/null
        end=$(date +%s.%N)
        echo "$end $start" | awk '{printf "%.3f\n", $1 - $2}' >> "$out/$which"
    done
done
for which in old new; do
    echo "$which: best $(sort -n "$out/$which" | head -1) s (all: $(tr '\n' ' ' < "$out/$which"))"
done
