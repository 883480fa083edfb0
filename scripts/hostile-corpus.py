#!/usr/bin/env python3
"""Writes the hostile-input corpus: safetensors files that are malformed, or legal but built to hurt.

    scripts/hostile-corpus.py OUT_DIR [--small]

Every case is one file OUT_DIR/<case>.safetensors; OUT_DIR/cases.json lists them as
{"file", "expect": "ok" | "failed", "why": words the refusal must contain (for failed cases)}.
Nothing is random: the same command writes the same bytes. `--small` leaves out the two big cases
(the 100 MB header and the 200 000 empty tensors), for the fuzzer's seed corpus.
The test suite (Tests/QuantDaemonTests/HostileCorpusTests.swift) runs every case through
`quantd quantize` and through a running daemon; scripts/fuzz.sh uses it as the fuzzer's seeds.
"""
import json
import os
import struct
import sys


def f32_bytes(count, seed):
    """`count` float32 values in [-1, 1) from a linear congruential generator."""
    out = bytearray()
    state = seed
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out += struct.pack("<f", ((state >> 11) % 2_000_001 - 1_000_000) / 1_000_000)
    return bytes(out)


def with_prefix(header_text, data=b"", pad=True):
    """A file: 8-byte little-endian length, the header text (space-padded to 8), the data."""
    header = header_text.encode("utf-8") if isinstance(header_text, str) else header_text
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def valid(tensors, seed=1):
    """A legal file from [(name, dtype, shape)] with float32 data (other dtypes get zero bytes)."""
    header, data = {}, b""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "F64": 8}
    for name, dtype, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        raw = f32_bytes(count, seed) if dtype == "F32" else bytes(count * sizes[dtype])
        header[name] = entry(dtype, shape, len(data), len(data) + len(raw))
        data += raw
        seed += 1
    return with_prefix(json.dumps(header, separators=(",", ":")), data)


def cases(small):
    good = valid([("layer0.weight", "F32", [16, 32]), ("layer0.bias", "F32", [16])])
    four = f32_bytes(4, 7)
    one = {"w": entry("F32", [2, 2], 0, 16)}
    yield "legal-small", good, "ok", ""
    yield "legal-odd-dtypes-and-ranks", valid([
        ("scalar", "F32", []), ("vector", "F32", [5]), ("cube.weight", "F32", [2, 3, 8]),
        ("half.weight", "F16", [4, 8]), ("brain.weight", "BF16", [4, 8]), ("ints", "I8", [7]),
        ("empty.weight", "F32", [0, 8]),
    ]), "ok", ""
    # The 8-byte length.
    yield "empty-file", b"", "failed", "fewer than the 8-byte header length"
    yield "truncated-prefix", b"\x10\x00\x00", "failed", "fewer than the 8-byte header length"
    yield "length-zero", struct.pack("<Q", 0) + b"{}", "failed", "header length is 0"
    yield "length-huge", struct.pack("<Q", (1 << 64) - 1) + b"{}", "failed", "exceeds the limit"
    yield "length-2-63", struct.pack("<Q", 1 << 63) + b"{}", "failed", "exceeds the limit"
    yield "length-past-end", struct.pack("<Q", 4096) + b"{}      ", "failed", "past the end"
    yield "length-over-limit", struct.pack("<Q", 200_000_000) + b"{}      ", "failed", "exceeds the limit"
    # The JSON text.
    yield "not-json", with_prefix("hello, world"), "failed", "unexpected byte"
    yield "json-array", with_prefix("[1, 2, 3]"), "failed", "not an object"
    yield "json-unterminated", with_prefix('{"w": {"dtype": "F32"'), "failed", "ends"
    yield "json-trailing-text", with_prefix('{} {}'), "failed", "after"
    yield "json-bad-utf8", with_prefix(b'{"w\xff\xfe": 1}'), "failed", "UTF-8"
    yield "json-nul-padding", with_prefix(b"{}\x00\x00\x00\x00\x00\x00", pad=False), "failed", "padding"
    yield "deep-nesting", with_prefix('{"__metadata__":' + "[" * 100_000 + "]" * 100_000 + "}"), \
        "failed", "nested deeper"
    yield "deep-nesting-unclosed", with_prefix('{"a":' + "[" * 1_000_000), "failed", "nested deeper"
    yield "huge-number", with_prefix('{"w": {"dtype": "F32", "shape": [' + "9" * 5000 + '], '
                                     '"data_offsets": [0, 4]}}', four), "failed", "integer"
    # Entries.
    yield "entry-not-object", with_prefix('{"w": 5}'), "failed", "not an object"
    yield "entry-missing-shape", with_prefix('{"w": {"dtype": "F32", "data_offsets": [0, 4]}}', four), \
        "failed", "no shape"
    yield "entry-unknown-key", with_prefix(json.dumps({"w": dict(entry("F32", [1], 0, 4), extra=1)}), four), \
        "failed", "unknown key"
    yield "entry-duplicate-key", with_prefix('{"w": {"dtype": "F32", "dtype": "F32", "shape": [1], '
                                             '"data_offsets": [0, 4]}}', four), "failed", "appears twice"
    yield "dtype-unknown", with_prefix(json.dumps({"w": entry("F33", [1], 0, 4)}), four), "failed", "unknown dtype"
    yield "dtype-not-string", with_prefix('{"w": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}}', four), \
        "failed", "not a string"
    yield "shape-negative", with_prefix(json.dumps({"w": entry("F32", [-1], 0, 4)}), four), "failed", "negative"
    yield "shape-fraction", with_prefix('{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}',
                                        four), "failed", "integer"
    yield "shape-string", with_prefix('{"w": {"dtype": "F32", "shape": "4", "data_offsets": [0, 4]}}', four), \
        "failed", "not an array"
    yield "shape-overflow", with_prefix(json.dumps({"w": entry("F32", [1 << 62, 1 << 62], 0, 4)}), four), \
        "failed", "overflows"
    yield "shape-bits-overflow", with_prefix(json.dumps({"w": entry("F64", [1 << 60], 0, 8)}), bytes(8)), \
        "failed", "overflows"
    yield "shape-rank-17", with_prefix(json.dumps({"w": entry("F32", [1] * 17, 0, 4)}), four), \
        "failed", "dimensions"
    yield "shape-rank-1e5", with_prefix(json.dumps({"w": entry("F32", [1] * 100_000, 0, 4)}), four), \
        "failed", "dimensions"
    yield "offsets-overflow", with_prefix('{"w": {"dtype": "F32", "shape": [1], '
                                          '"data_offsets": [0, 18446744073709551620]}}', four), \
        "failed", "integer"
    yield "offsets-reversed", with_prefix(json.dumps({"w": entry("F32", [1], 4, 0)}), four), "failed", "begin > end"
    yield "offsets-three", with_prefix(json.dumps({"w": {"dtype": "F32", "shape": [1],
                                                         "data_offsets": [0, 4, 8]}}), four), \
        "failed", "more than 2"
    yield "offsets-size-mismatch", with_prefix(json.dumps({"w": entry("F32", [2], 0, 4)}), four), \
        "failed", "needs 8"
    yield "odd-byte-count", with_prefix(json.dumps({"w": entry("F32", [1], 0, 3)}), four[:3]), "failed", "needs 4"
    yield "fractional-bytes", with_prefix(json.dumps({"w": entry("F4", [3], 0, 1)}), b"\x00"), \
        "failed", "whole number of bytes"
    yield "overlap", with_prefix(json.dumps({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}),
                                 f32_bytes(3, 1)), "failed", "overlap"
    yield "gap", with_prefix(json.dumps({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}),
                             f32_bytes(3, 1)), "failed", "belong to no tensor"
    yield "first-not-at-zero", with_prefix(json.dumps({"a": entry("F32", [1], 4, 8)}), f32_bytes(2, 1)), \
        "failed", "not 0"
    yield "duplicate-tensor", with_prefix('{"w": ' + json.dumps(entry("F32", [1], 0, 4)) + ', "w": '
                                          + json.dumps(entry("F32", [1], 4, 8)) + "}", f32_bytes(2, 1)), \
        "failed", "appears twice"
    yield "duplicate-metadata", with_prefix('{"__metadata__": {}, "__metadata__": {}}'), "failed", "appears twice"
    yield "metadata-not-strings", with_prefix('{"__metadata__": {"a": 1}}'), "failed", "not a string"
    yield "trailing-bytes", with_prefix(json.dumps(one), f32_bytes(5, 1)), "failed", "trailing bytes"
    yield "truncated-data", with_prefix(json.dumps(one), f32_bytes(3, 1)), "failed", "truncated"
    yield "data-past-end-huge", with_prefix(json.dumps({"w": entry("F32", [1 << 40], 0, 1 << 42)}), four), \
        "failed", "truncated"
    # Legal per the format, built to hurt. Too many tensors for the daemon's bound (max_tensors):
    # refused from the header alone; the command line (no such bound by default) quantizes them.
    if not small:
        count = 200_000
        text = "{" + ",".join(f'"e{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(count))
        yield "empty-tensors-200k", with_prefix(text + "}"), "ok", ""
        # About 100 MB of header: 1.2 million one-element tensors, past the default tensor bound.
        parts, i = [], 0
        size = 0
        while size < 97_000_000:
            part = f'"t{i:07d}":{{"dtype":"I8","shape":[1],"data_offsets":[{i},{i + 1}]}}'
            parts.append(part)
            size += len(part) + 1
            i += 1
        yield "header-100mb", with_prefix("{" + ",".join(parts) + "}", bytes(i)), "failed", "tensors"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    small = "--small" in sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    listed = []
    for name, data, expect, why in cases(small):
        file = name + ".safetensors"
        with open(os.path.join(out, file), "wb") as f:
            f.write(data)
        listed.append({"file": file, "expect": expect, "why": why})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(listed, f, indent=1)
    print(f"{len(listed)} cases in {out}")


if __name__ == "__main__":
    main()
