#!/usr/bin/env bash
# Interleaved A/B of the bench's in-process kernel figures (1 thread, best of ROUNDS runs each), for a change that
# must not slow the kernels. OLD and NEW are bench command lines, quoted:
#   scripts/ab-kernels.sh "OLD/quantd bench" "NEW/quantd-bench --quantd NEW/quantd" [ROUNDS]
# (before the bench left the product it was `quantd bench`; since, `quantd-bench`, which times the quantd beside it)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 \"OLD bench command\" \"NEW bench command\" [ROUNDS]" >&2; exit 64; }
read -r -a old <<< "$1"
read -r -a new <<< "$2"
rounds=${3:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/a" "$dir/b"
flags=(--size 64M --threads 1 --repeat 1 --kernel-repeat 10 --daemon-jobs 0 --skip-python)
for i in $(seq 1 "$rounds"); do
    "${old[@]}" "${flags[@]}" --dir "$dir/a" --json "$dir/a/r$i.json" >/dev/null 2>&1
    "${new[@]}" "${flags[@]}" --dir "$dir/b" --json "$dir/b/r$i.json" >/dev/null 2>&1
done
python3 - "$dir" "$rounds" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
best = {}
for side in "ab":
    for i in range(1, n + 1):
        for k in json.load(open(f"{d}/{side}/r{i}.json"))["kernels"]:
            # Reports before the in-cache figures have no rows: they are all 4096 x 4096 (from memory).
            key = (k.get("rows", 4096), k["name"], k["threads"])
            best.setdefault(key, {}).setdefault(side, []).append(k["gbPerSecond"])
print(f"{'kernel (1 thread), GB/s':44} {'rows':>5} {'old best':>9} {'new best':>9} {'new/old':>8}")
for (rows, name, _), v in best.items():
    if "a" not in v or "b" not in v: continue
    a, b = max(v["a"]), max(v["b"])
    print(f"{name:44} {rows:5} {a:9.2f} {b:9.2f} {b / a:8.3f}")
PY
