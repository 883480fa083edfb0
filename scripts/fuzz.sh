#!/usr/bin/env bash
# libFuzzer over the safetensors reader and header parser (Sources/FuzzHeader).
#   scripts/fuzz.sh build            build the harness (ASan + libFuzzer) into .build/fuzz
#   scripts/fuzz.sh ci [RUNS]        deterministic short run: the generated seed corpus, then RUNS (100000)
#                                    mutations from seed 1; exits non-zero on any finding
#   scripts/fuzz.sh run SECONDS [FLAGS...]
#                                    long run (FLAGS go to libFuzzer, e.g. -use_value_profile=1 -jobs=2);
#                                    the corpus grows in .build/fuzz-corpus, findings land in
#                                    .build/fuzz-findings (crash-*, leak-*, timeout-*), replay one with
#                                    `.build/fuzz/x86_64-unknown-linux-gnu/debug/quantd-fuzz-header FILE`
# The seeds come from scripts/hostile-corpus.py --small (every malformed-header kind, and legal files).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ci}
build() {
    QUANTD_FUZZ=1 swift build --scratch-path .build/fuzz -Xswiftc -sanitize=fuzzer,address \
        --product quantd-fuzz-header 2>&1 | grep -v "ld.gold: warning: Cannot export local symbol" || true
    binary=$(QUANTD_FUZZ=1 swift build --scratch-path .build/fuzz --show-bin-path)/quantd-fuzz-header
    [ -x "$binary" ] || { echo "fuzz: the harness did not build" >&2; exit 1; }
}
seeds() {
    rm -rf "$1" && python3 scripts/hostile-corpus.py "$1" --small >/dev/null && rm "$1/cases.json"
}
case "$mode" in
    build) build ;;
    ci)
        build
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        seeds "$work/seeds"
        mkdir "$work/corpus"
        cd "$work"
        "$binary" -seed=1 -runs="${2:-100000}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 corpus seeds
        ;;
    run)
        build
        seconds=${2:?usage: scripts/fuzz.sh run SECONDS}
        mkdir -p .build/fuzz-corpus .build/fuzz-findings
        seeds .build/fuzz-seeds
        "$binary" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix=.build/fuzz-findings/ -print_final_stats=1 "${@:3}" .build/fuzz-corpus .build/fuzz-seeds
        ;;
    *) echo "usage: scripts/fuzz.sh build | ci [RUNS] | run SECONDS" >&2; exit 64 ;;
esac
