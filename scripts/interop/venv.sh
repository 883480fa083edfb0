#!/usr/bin/env bash
# Makes the Python environment the interop tests load outputs with: the CPU torch wheel these machines carry
# (/opt/wheels), transformers and compressed-tensors, in .build/interop-venv. Prints the python's path on stdout;
# exits non-zero (and the tests skip, saying why) when the wheel or the packages cannot be had.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.build/interop-venv
wheel=$(find /opt -maxdepth 2 -name 'torch-*cpu*.whl' 2>/dev/null | sort | tail -1)
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, compressed_tensors" 2>/dev/null; then
    echo "$PWD/$venv/bin/python"; exit 0
fi
[ -n "$wheel" ] || { echo "interop: no CPU torch wheel under /opt" >&2; exit 1; }
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q "$wheel" "transformers==5.24.0" "compressed-tensors==0.20.1" >&2
echo "$PWD/$venv/bin/python"
