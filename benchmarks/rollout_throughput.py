"""Rollout throughput of the engines on the same model, prompts and sampling settings: the HF
engine (transformers ``generate``) and the colocated vLLM engine, plus the cost of one weight push
(with its verification probe). Random weights: the work per token does not depend on them.

Prints generated tokens per second (counting each response's own tokens up to EOS or the limit)
and the push time, one JSON line per engine.

    python benchmarks/rollout_throughput.py [--size small|70m|360m] [--prompts 64] [--samples 4]
        [--new-tokens 64] [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from posttrain.config.schema import VLLMConfig
from posttrain.models.tokenizer import build_byte_tokenizer
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine

SIZES = {  # (hidden, intermediate, layers, heads, kv heads): head dim 64 throughout
    "small": (256, 1024, 4, 4, 2),
    "70m": (768, 3072, 8, 12, 4),
    "360m": (1024, 4096, 24, 16, 2),
}


def build(size: str, vocab: int, dtype: torch.dtype, device: str) -> torch.nn.Module:
    hidden, intermediate, layers, heads, kv = SIZES[size]
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                         max_position_embeddings=1024, tie_word_embeddings=True, pad_token_id=0,
                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).to(device=device, dtype=dtype).eval()


def rate(engine, prompts: list[list[int]], samples: int, sampling: SamplingParams) -> float:
    engine.generate(prompts[:2], 1, sampling)  # warm-up
    started = time.perf_counter()
    batch = engine.generate(prompts, samples, sampling)
    elapsed = time.perf_counter() - started
    return float(batch.response_mask.sum()) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype)
    tokenizer = build_byte_tokenizer()
    model = build(args.size, len(tokenizer), dtype, device)
    params = sum(p.numel() for p in model.parameters())
    prompts = [tokenizer(f"{i % 97}+{(7 * i) % 89}=")["input_ids"] for i in range(args.prompts)]
    sampling = SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0, seed=0)
    common = {"size": args.size, "params": params, "dtype": args.dtype, "device": device, "prompts": args.prompts,
              "samples": args.samples, "new_tokens": args.new_tokens}
    hf = rate(HFRolloutEngine(model, tokenizer, batch_size=args.prompts * args.samples), prompts, args.samples,
              sampling)
    print(json.dumps({"engine": "hf", "tokens_per_s": round(hf, 1), **common}), flush=True)

    from posttrain.rollout.vllm_engine import VLLMRolloutEngine

    with tempfile.TemporaryDirectory():
        started = time.perf_counter()
        engine = VLLMRolloutEngine(model, tokenizer, VLLMConfig(), max_model_len=512)
        startup = time.perf_counter() - started
        vllm = rate(engine, prompts, args.samples, sampling)
        started = time.perf_counter()
        engine.sync_weights(model)
        push = time.perf_counter() - started
    print(json.dumps({"engine": "vllm", "tokens_per_s": round(vllm, 1), "speedup": round(vllm / hf, 2),
                      "startup_s": round(startup, 1), "weight_push_s": round(push, 3), **common}), flush=True)


if __name__ == "__main__":
    main()
