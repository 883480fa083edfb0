#!/usr/bin/env bash
# Whether two quantd binaries write the same outputs: each quantizes INPUT with every flag set below (or the ones
# given), and every file of the two output folders must be byte-identical, manifest.json included once its
# clock fields (started_at, finished_at, timings) are set aside. Exit 0 when all match, 1 naming what differs.
#   scripts/ab-outputs.sh OLD_QUANTD NEW_QUANTD INPUT ["flags" ...]
# (build OLD from an earlier commit in a worktree: git worktree add /tmp/old REV && (cd /tmp/old && swift build))
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OLD_QUANTD NEW_QUANTD INPUT [\"flags\" ...]" >&2; exit 64; }
old=$1 new=$2 input=$3
shift 3
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=("" "--scheme W8A8" "--asymmetric" "--granularity channel" "--calibration entropy"
    "--calibration percentile" "--scale-dtype f16" "--min-sqnr 40" "--threads 1" "--level 19")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for flags in "${sets[@]}"; do
    rm -rf "$out/old" "$out/new"
    # shellcheck disable=SC2086
    "$old" quantize "$input" -o "$out/old" $flags >/dev/null
    # shellcheck disable=SC2086
    "$new" quantize "$input" -o "$out/new" $flags >/dev/null
    for side in old new; do
        python3 - "$out/$side/manifest.json" <<'PY'
import json, sys
path = sys.argv[1]
m = json.load(open(path))
for key in ("started_at", "finished_at", "timings"):
    m.pop(key, None)
json.dump(m, open(path + ".stable", "w"), sort_keys=True, indent=1)
PY
    done
    if diff -r -q -x manifest.json "$out/old" "$out/new" >/dev/null; then
        echo "same: quantize ${flags:-(defaults)}: $(find "$out/new" -type f ! -name '*.stable' | wc -l) files"
    else
        echo "DIFFERENT: quantize ${flags:-(defaults)}:"; diff -r -q -x manifest.json "$out/old" "$out/new" || true
        status=1
    fi
done
exit $status
