#!/bin/sh
# Reproduces the README's quality table: every calibrator x granularity on a checkpoint (default: the MiniLM
# fixture), one Markdown row each (median and worst SQNR over the quantized tensors, bits per quantized weight
# with scales, wall time of `quantd quantize` on this machine), from each output's manifest via `quantd report --row`.
#   scripts/quality-table.sh [CHECKPOINT]      (QUANTD=path/to/quantd to skip the release build)
set -eu
cd "$(dirname "$0")/.."
input="${1:-../shared/fixtures/minilm/model.safetensors}"
if [ -z "${QUANTD:-}" ]; then
    swift build -c release --product quantd >/dev/null
    QUANTD="$(swift build -c release --show-bin-path)/quantd"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "| calibrator | scheme | median SQNR dB | min SQNR dB | bits/weight | time s |"
echo "| --- | --- | --- | --- | --- | --- |"
row() {
    "$QUANTD" quantize "$input" -o "$out/q" --force "$@" >/dev/null
    "$QUANTD" report "$out/q" --row
}
for calibration in absmax percentile mse entropy auto; do
    for scheme in "tensor" "channel" "group 128" "group 64" "group 32"; do
        set -- $scheme
        if [ "$1" = group ]; then
            row --calibration "$calibration" --granularity group --group-size "$2"
        else
            row --calibration "$calibration" --granularity "$1"
        fi
    done
done
# Variants of the default scheme: asymmetric, and half-size scales.
row --calibration absmax --granularity group --group-size 128 --asymmetric
row --calibration absmax --granularity group --group-size 128 --scale-dtype f16
row --calibration absmax --granularity group --group-size 128 --scale-dtype bf16
row --calibration absmax --granularity group --group-size 64 --scale-dtype f16
row --calibration absmax --granularity group --group-size 128 --scale-dtype f16 --asymmetric
