"""Generation throughput of decoding methods on randomly initialised models of a chosen size:
plain sampling (transformers ``generate``), value-guided sampling (VAS, top-k candidates re-scored
by a value model that reuses its KV cache) with a value model as large as the base and with a
small one, and best-of-N (N samples per returned one; the scorer's cost is left out).

Random weights are fine: the work per token does not depend on them. A batch decodes until its
last row ends, so throughput counts every row for every step decoded (rows × steps / seconds).
Prints that rate per method and the slowdown against plain sampling.

    python benchmarks/decoding_throughput.py [--size 360m|small|tiny] [--batch 64] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, Qwen2Config

from posttrain.decoding.guided import ValueGuidedEngine
from posttrain.decoding.value_head import ValueGuide
from posttrain.models.tokenizer import build_byte_tokenizer
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine

SIZES = {  # (hidden, intermediate, layers, heads, kv heads): head dim 64 throughout
    "360m": (1024, 4096, 24, 16, 2),  # Qwen2.5-0.5B's body with the byte vocabulary
    "small": (512, 2048, 4, 8, 2),
    "tiny": (128, 512, 4, 2, 1),
}


def build(size: str, vocab: int, head: str, dtype: torch.dtype, device: str) -> torch.nn.Module:
    hidden, intermediate, layers, heads, kv = SIZES[size]
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                         max_position_embeddings=4096, tie_word_embeddings=True, num_labels=1,
                         pad_token_id=0)
    cls = AutoModelForCausalLM if head == "lm" else AutoModelForTokenClassification
    return cls.from_config(config).to(device=device, dtype=dtype).eval()


def timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES))
    parser.add_argument("--value-size", default="small", choices=sorted(SIZES), help="the small value model")
    parser.add_argument("--batch", type=int, default=64, help="prompts decoded together")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--n", type=int, default=4, help="best-of-N's N")
    parser.add_argument("--dtype", default="auto", help="bfloat16 on CUDA, float32 on CPU by default")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"auto": torch.bfloat16 if device == "cuda" else torch.float32, "bfloat16": torch.bfloat16,
             "float32": torch.float32}[args.dtype]
    tokenizer = build_byte_tokenizer()
    vocab = len(tokenizer)
    torch.manual_seed(0)
    base = build(args.size, vocab, "lm", dtype, device)
    base.generation_config.eos_token_id = tokenizer.eos_token_id
    prompts = [tokenizer(f"{a}+{b}=")["input_ids"] for a, b in zip(range(10, 10 + args.batch), range(50, 50 + args.batch))]
    sampling = SamplingParams(max_new_tokens=args.new_tokens)
    hf = HFRolloutEngine(base, tokenizer, batch_size=args.batch * args.n)
    methods = {"sampling (generate)": lambda: hf.generate(prompts, 1, sampling),
               f"best-of-{args.n} (generation only)": lambda: hf.generate(prompts, args.n, sampling).select(
                   list(range(0, args.batch * args.n, args.n)))}
    for label, size in (("same-size", args.size), ("small", args.value_size)):
        value = build(size, vocab, "value", dtype, device)
        engine = ValueGuidedEngine(base, tokenizer, [ValueGuide(value, 1.0, None)], args.top_k, args.batch)
        methods[f"VAS k={args.top_k}, {label} value model ({size})"] = \
            lambda engine=engine: engine.generate(prompts, 1, sampling)
    parameters = sum(p.numel() for p in base.parameters())
    print(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, {dtype}, base {args.size} "
          f"({parameters / 1e6:.0f}M parameters), {args.batch} prompts × {args.new_tokens} tokens")
    results = []
    with torch.no_grad():
        for name, fn in methods.items():
            steps = fn().response_ids.shape[1]  # warm-up
            seconds = min(timed(fn, device) for _ in range(2))
            results.append({"method": name, "seconds": seconds, "steps": steps,
                            "tokens_per_s": args.batch * steps / seconds})
    reference = results[0]["tokens_per_s"]
    print("| method | returned tokens/s (rows × steps / s) | × plain sampling time |\n|---|---|---|")
    for row in results:
        print(f"| {row['method']} | {row['tokens_per_s']:,.0f} | {reference / row['tokens_per_s']:.2f} |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"device": device, "dtype": str(dtype), "size": args.size, "parameters": parameters,
                       "batch": args.batch, "new_tokens": args.new_tokens, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
