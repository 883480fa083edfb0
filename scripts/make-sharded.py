#!/usr/bin/env python3
"""Writes a LLaMA-shaped fp32 checkpoint split into shards with a model.safetensors.index.json, for the figures of
sharded jobs (README, Performance): scripts/make-sharded.py OUTDIR [--gib 2.1] [--shards 4] [--seed 1].
Weights are normal(0, 0.02) with a few outliers per row, like trained ones; the same seed gives the same bytes."""
import argparse, json, os, struct
import numpy as np

def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--gib", type=float, default=2.1)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hidden", type=int, default=2048)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    h, f = a.hidden, a.hidden * 11 // 4
    layer = [("self_attn.q_proj.weight", (h, h)), ("self_attn.k_proj.weight", (h // 4, h)),
             ("self_attn.v_proj.weight", (h // 4, h)), ("self_attn.o_proj.weight", (h, h)),
             ("mlp.gate_proj.weight", (f, h)), ("mlp.up_proj.weight", (f, h)), ("mlp.down_proj.weight", (h, f)),
             ("input_layernorm.weight", (h,)), ("post_attention_layernorm.weight", (h,))]
    per_layer = sum(int(np.prod(s)) * 4 for _, s in layer)
    layers = max(a.shards, round(a.gib * (1 << 30) / per_layer))
    os.makedirs(a.out, exist_ok=True)
    weight_map, total = {}, 0
    bounds = [round(i * layers / a.shards) for i in range(a.shards + 1)]
    for k in range(a.shards):
        name = f"model-{k + 1:05d}-of-{a.shards:05d}.safetensors"
        tensors, offset, header = [], 0, {}
        for i in range(bounds[k], bounds[k + 1]):
            for suffix, shape in layer:
                tname = f"model.layers.{i}.{suffix}"
                if len(shape) == 1:
                    data = np.ones(shape, np.float32)
                else:
                    data = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
                    data[:, 0] *= 20
                header[tname] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + data.nbytes]}
                offset += data.nbytes
                tensors.append(data)
                weight_map[tname] = name
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(os.path.join(a.out, name), "wb") as out:
            out.write(struct.pack("<Q", len(raw)) + raw)
            for t in tensors:
                out.write(t.tobytes())
        total += offset
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as out:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, out, indent=2)
    print(f"{a.out}: {layers} layers in {a.shards} shards, {total / (1 << 30):.2f} GiB")

if __name__ == "__main__":
    main()
