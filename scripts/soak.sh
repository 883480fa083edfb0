#!/usr/bin/env bash
# The SIGKILL soak, longer than the test suite's 30 kills: scripts/soak.sh [KILLS] (default 300).
# Each kill lands at a seeded random moment (20-400 ms after a start) on a daemon working through 3 x KILLS
# small checkpoints (one in ten corrupt); the test checks after every kill that each input is in exactly one
# place and every output in out/ verifies, then that each input ended exactly once. It prints its figures
# ("soak: N kills, ...").
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
QUANTD_SOAK_KILLS="${1:-300}" swift test --skip-build --filter KillSoakTests 2>&1 | grep -E "soak:|✔|✘|passed|failed"
