#!/usr/bin/env bash
# Installs what building and testing quantd needs on Debian, only when it is missing:
# libzstd-dev (the C library, found through pkg-config), pkg-config, and the zstd tool (tests compare with it).
set -euo pipefail
missing=()
pkg-config --exists libzstd 2>/dev/null || missing+=(libzstd-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "deps: the Swift 6.3 toolchain is not on PATH (https://swift.org/install)" >&2; exit 1; }
