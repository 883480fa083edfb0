#!/usr/bin/env python3
"""Loads a quantized model folder the way its users do and compares its sentence embeddings with the fp32 model's.

  embed_check.py transformers REFERENCE MODEL     AutoModel.from_pretrained(MODEL) (compressed-tensors integration)
  embed_check.py ct-dequantize REFERENCE MODEL    compressed_tensors' convert_checkpoint + CompressedTensorsDequantizer,
                                                  then AutoModel on the dequantized folder
  embed_check.py vllm REFERENCE MODEL             vLLM (CPU build), LLM(runner="pooling").embed

REFERENCE is the fp32 model folder. Prints one JSON line: mean and min cosine over 20 sentences against the fp32
model in transformers (mean pooling, as sentence-transformers' MiniLM does; vLLM pools with the folder's pooler
config), and for vllm also against vLLM's own fp32 run of REFERENCE. Run vllm with VLLM_ENABLE_V1_MULTIPROCESSING=0.
Exit 0 when it loaded; the caller judges the figures.
"""
import json
import os
import sys
import tempfile

SENTENCES = [
    "The cat sits on the mat.", "A quick brown fox jumps over the lazy dog.", "Quantization maps floats to integers.",
    "Paris is the capital of France.", "The stock market fell sharply on Monday.", "She plays the violin every evening.",
    "Rain is expected tomorrow afternoon.", "Neural networks learn from data.", "He forgot his keys at the office.",
    "The recipe needs two cups of flour.", "Mount Everest is the highest mountain on Earth.",
    "Please restart the server after the update.", "The children built a sandcastle on the beach.",
    "Coffee keeps many people awake.", "The train to Berlin leaves at noon.", "A daemon watches the spool folder.",
    "Photosynthesis turns light into chemical energy.", "The museum opens at nine.",
    "Compression makes files smaller.", "They celebrated the victory all night.",
]


def mean_pooled(model_dir, tokenizer_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = AutoModel.from_pretrained(model_dir)
    model.eval()
    batch = tok(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
    pooled = (out * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1), model


def cosines(a, b):
    import torch
    c = torch.nn.functional.cosine_similarity(torch.as_tensor(a).float(), torch.as_tensor(b).float(), dim=-1)
    return float(c.mean()), float(c.min())


def main():
    mode, reference, model_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    result = {"mode": mode, "model": model_dir}
    if mode == "transformers":
        ref, _ = mean_pooled(reference, reference)
        got, model = mean_pooled(model_dir, model_dir)
        kinds = sorted({type(m).__name__ for m in model.modules() if "Linear" in type(m).__name__})
        result["linear_modules"] = kinds
    elif mode == "ct-dequantize":
        import torch
        from compressed_tensors.entrypoints.convert import convert_checkpoint
        from compressed_tensors.entrypoints.convert.converters import CompressedTensorsDequantizer
        ref, _ = mean_pooled(reference, reference)
        with tempfile.TemporaryDirectory() as out:
            convert_checkpoint(model_dir, out, CompressedTensorsDequantizer(model_dir, dtype=torch.float32),
                               max_workers=1, device="cpu")
            config = json.load(open(os.path.join(out, "config.json")))
            result["dequantized_has_quantization_config"] = "quantization_config" in config
            got, _ = mean_pooled(out, model_dir)
    elif mode == "vllm":
        import gc
        import torch
        from vllm import LLM

        def embed(path):
            llm = LLM(model=path, runner="pooling", enforce_eager=True, dtype="float32")
            outs = llm.embed(SENTENCES)
            del llm
            gc.collect()
            return torch.nn.functional.normalize(torch.tensor([o.outputs.embedding for o in outs]), dim=-1)

        ref, _ = mean_pooled(reference, reference)
        got = embed(model_dir)
        # vLLM's own fp32 run of the reference folder: the cosine of int8 against fp32 within one engine.
        result["vllm_fp32_mean_cosine"], result["vllm_fp32_min_cosine"] = cosines(embed(reference), got)
    else:
        sys.exit(f"unknown mode {mode}")
    result["mean_cosine"], result["min_cosine"] = cosines(ref, got)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
