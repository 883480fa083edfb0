#!/usr/bin/env bash
# A/B of two quantd binaries on the same input, interleaved so that machine noise hits both alike: N runs of
# `quantize` each (default 5; RUNS=N), with each run's wall time, CPU (user, system), minor page faults and peak
# RSS. Used to check that a change costs nothing end to end:
#   scripts/ab-quantize.sh OLD_QUANTD NEW_QUANTD INPUT [quantize flags...]
# With NEW_INPUT=PATH the new side quantizes PATH instead of INPUT: one binary on two inputs, e.g. a sharded folder
# against the same bytes in one file (NEW_INPUT=/tmp/sh1/model-00001-of-00001.safetensors ... Q Q /tmp/sh4).
# (build OLD from an earlier commit in a worktree: git worktree add /tmp/old REV && (cd /tmp/old && swift build -c release))
# The figures come from wait4 in a small Python process: its own few MiB are below any quantd's peak, so the
# child's ru_maxrss is its own (a child of a large process would report that process's peak).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OLD_QUANTD NEW_QUANTD INPUT [quantize flags...]" >&2; exit 64; }
exec python3 - "${RUNS:-5}" "${NEW_INPUT:-}" "$@" <<'PY'
import os, shutil, statistics, sys, tempfile, time
runs, new_source, old, new, source, flags = (int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5],
                                             sys.argv[6:])
sources = {"old": source, "new": new_source or source}
out = tempfile.mkdtemp(prefix="quantd-ab-")
figures = {"old": [], "new": []}
try:
    for _ in range(runs):
        for which, binary in (("old", old), ("new", new)):
            shutil.rmtree(os.path.join(out, "q"), ignore_errors=True)
            start = time.monotonic()
            pid = os.fork()
            if pid == 0:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
                os.execv(binary, [binary, "quantize", sources[which], "-o", os.path.join(out, "q")] + flags)
            _, status, usage = os.wait4(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"{binary} quantize exited with {os.waitstatus_to_exitcode(status)}")
            figures[which].append((time.monotonic() - start, usage.ru_utime, usage.ru_stime, usage.ru_minflt,
                                   usage.ru_maxrss / 1024))
finally:
    shutil.rmtree(out, ignore_errors=True)
for which, rows in figures.items():
    median = lambda k: statistics.median(r[k] for r in rows)
    print(f"{which}: wall best {min(r[0] for r in rows):.3f} s, median {median(0):.3f} s; user {median(1):.2f} s, "
          f"system {median(2):.2f} s, minor faults {median(3):.0f}, peak RSS {min(r[4] for r in rows):.0f}-"
          f"{max(r[4] for r in rows):.0f} MiB (medians over {runs}; all walls: "
          f"{' '.join(f'{r[0]:.3f}' for r in rows)})")
PY
