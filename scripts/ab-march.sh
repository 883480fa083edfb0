#!/usr/bin/env bash
# The default build's kernels against a build of them for one CPU (what the former TARGET_CPU did), on this machine:
#   scripts/ab-march.sh MARCH [ROUNDS]      e.g. scripts/ab-march.sh sapphirerapids 5
# MARCH is a clang -march value this CPU can run (`clang -march=native -### -x c /dev/null` names what clang takes
# this CPU for; a VM may hide the model, so name it). KernelsV4, the AVX-512 build that the default binary
# dispatches to on such a CPU, is compiled with -march=MARCH instead of x86-64-v4 (QUANTD_KERNELS_V4_MARCH, read by
# Package.swift) into .build-march-MARCH (the first run builds the dependencies there: minutes). Both release
# builds are then timed by scripts/ab-kernels.sh, interleaved, best of ROUNDS each: "old" is the default build,
# "new" the one for MARCH. On a CPU without AVX-512 the default build runs KernelsV3, which this does not touch.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 MARCH [ROUNDS]" >&2; exit 64; }
march=$1
rounds=${2:-5}
cd "$(dirname "$0")/.."
flags=(-c release --static-swift-stdlib)
swift build "${flags[@]}" >&2
default=$(swift build "${flags[@]}" --show-bin-path)
QUANTD_KERNELS_V4_MARCH="$march" swift build "${flags[@]}" --scratch-path ".build-march-$march" >&2
tuned=$(QUANTD_KERNELS_V4_MARCH="$march" swift build "${flags[@]}" --scratch-path ".build-march-$march" --show-bin-path)
if cmp -s "$default/quantd-bench" "$tuned/quantd-bench"; then
    echo "the build for $march is the same binary as the default one: QUANTD_KERNELS_V4_MARCH was not taken up" >&2
    exit 1
fi
echo "old: default build ($default); new: KernelsV4 built with -march=$march ($tuned)"
"$tuned/quantd" --version | sed -n 2p
scripts/ab-kernels.sh "$default/quantd-bench --quantd $default/quantd" "$tuned/quantd-bench --quantd $tuned/quantd" "$rounds"
