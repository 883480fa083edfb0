#!/usr/bin/env python3
"""The numpy baseline of `quantd-bench`: what a user would write to do quantd's job by hand.

Reads a safetensors checkpoint tensor by tensor (safe_open), quantizes every 2-D or larger float tensor to int8
with one absmax scale per row (scale = absmax / 127, round half to even, clip to [-127, 127]), keeps the rest as
they are, and writes one zstd frame per tensor (zstandard, level 3, `--threads` workers) to OUTPUT. It does not
hash and writes no manifest; the output is only there so that the work cannot be skipped.

Usage: bench_numpy.py INPUT OUTPUT [--threads N] [--level L]
"""

import argparse
import sys
import time

import numpy as np
import zstandard
from safetensors import safe_open


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row absmax int8 codes and float32 scales of a 2-D or larger float tensor."""
    rows = x.reshape(x.shape[0], -1).astype(np.float32, copy=False)
    absmax = np.abs(rows).max(axis=1)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return codes, scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--level", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    compressor = zstandard.ZstdCompressor(level=args.level, threads=args.threads, write_checksum=True)
    raw = packed = 0
    with safe_open(args.input, framework="numpy") as f, open(args.output, "wb") as out:
        for name in f.keys():
            x = f.get_tensor(name)
            if x.ndim >= 2 and np.issubdtype(x.dtype, np.floating):
                codes, scale = quantize_rows(x)
                parts = [codes.tobytes(), scale.tobytes()]
            else:
                parts = [x.tobytes()]
            for part in parts:
                frame = compressor.compress(part)
                out.write(frame)
                raw += len(part)
                packed += len(frame)
    seconds = time.perf_counter() - start
    print(f"bench_numpy: {raw} bytes -> {packed} compressed in {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
