"""Rollout throughput of the engines on the same model, prompts and sampling settings: the HF
engine (transformers ``generate``), the colocated vLLM engine and a vLLM server started with
``posttrain rollout-server`` (one worker on the same machine), plus the cost of one weight push
(with its check). Random weights: the work per token does not depend on them.

Prints generated tokens per second (counting each response's own tokens up to EOS or the limit)
and the push time, one JSON line per engine; with ``--grpo-steps N`` also the median time of a
whole GRPO step (generation, scoring, log-probs, update, weight push) with each engine.

    python benchmarks/rollout_throughput.py [--size small|70m|360m|0.5b] [--prompts 64] [--samples 4]
        [--new-tokens 64] [--dtype float32|bfloat16] [--grpo-steps 0] [--port 8300]
        [--compile] [--gpu-memory-utilization 0.15] [--weight-backend auto|nccl|gloo] [--sleep-mode]

On one GPU the server shares the trainer's device, where NCCL refuses two ranks: pass
``--weight-backend gloo`` there.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from posttrain.config import validate_recipe
from posttrain.config.schema import VLLMConfig, VLLMServerConfig
from posttrain.models.tokenizer import build_byte_tokenizer
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine

SIZES = {  # (hidden, intermediate, layers, heads, kv heads): head dim 64 throughout
    "small": (256, 1024, 4, 4, 2),
    "70m": (768, 3072, 8, 12, 4),
    "360m": (1024, 4096, 24, 16, 2),
    "0.5b": (896, 4864, 24, 14, 2),  # Qwen2.5-0.5B's layers (with the byte vocabulary, not its 152k)
}


MAX_MODEL_LEN = 512


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


def start_server(folder: str, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "posttrain.cli", "rollout-server", folder, "--port", str(args.port),
               "--dtype", args.dtype, "--max-model-len", str(MAX_MODEL_LEN), "--log-dir", args.log_dir or f"{folder}/logs",
               "--gpu-memory-utilization", str(args.gpu_memory_utilization), "--weight-backend", args.weight_backend]
    if args.compile:
        command.append("--compile")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("rollout.vllm_server.urls"):
            return process, f"http://127.0.0.1:{args.port}"
    raise RuntimeError(f"rollout-server failed; see {args.log_dir or folder + '/logs'}")


def grpo_steps(folder: str, engine: dict, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Median wall time of a GRPO step (after the first) on the arithmetic task with ``engine``, and
    the largest sampling/trainer log-prob mismatch of the run."""
    recipe = validate_recipe({
        "model": {"path": folder, "dtype": args.dtype},
        "data": {"task": {"name": "arithmetic", "digits": 2, "num_train": 512, "num_test": 16}},
        "algorithm": {"name": "grpo"},
        "rollout": {"num_generations": args.samples, "max_new_tokens": args.new_tokens, **engine},
        "rewards": [{"name": "exact_answer"}],
        "trainer": {"steps": args.grpo_steps, "batch_size": args.prompts, "minibatch_size": args.minibatch_size,
                    "eval_every": 0, "checkpoint_every": 0,
                    "output_dir": str(out)},
        "logging": {"progress": False}})
    from posttrain.trainers import train
    from posttrain.trainers.metrics import read_metrics

    train(recipe)
    steps = read_metrics(out / "metrics.jsonl")
    result = {"grpo_step_s": round(statistics.median(m["time/step_s"] for m in steps[1:]), 2)}
    for key in ("rollout/logp_diff_max", "rollout/kl_to_trainer"):
        values = [m[key] for m in steps if key in m]
        if values:
            result[key.removeprefix("rollout/")] = float(f"{max(values):.3g}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--grpo-steps", type=int, default=0, help="also time GRPO steps with each engine")
    parser.add_argument("--port", type=int, default=8300, help="port of the benchmark's vLLM server")
    parser.add_argument("--compile", action="store_true", help="vLLM with compilation and CUDA graphs (GPU)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.15,
                        help="GPU memory share of each vLLM engine (they share the trainer's GPU)")
    parser.add_argument("--weight-backend", choices=["auto", "nccl", "gloo"], default="auto",
                        help="transport of the server's weight push")
    parser.add_argument("--minibatch-size", type=int, help="sequences per GRPO update (default: the whole batch)")
    parser.add_argument("--log-dir", help="keep the server's logs here (default: a temporary folder)")
    parser.add_argument("--skip-colocated", action="store_true", help="only HF and the server")
    parser.add_argument("--sleep-mode", action="store_true", help="also time GRPO with vLLM's sleep mode (GPU)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype)
    tokenizer = build_byte_tokenizer()
    model = build(args.size, len(tokenizer), dtype, device)
    params = sum(p.numel() for p in model.parameters())
    prompts = [tokenizer(f"{i % 97}+{(7 * i) % 89}=")["input_ids"] for i in range(args.prompts)]
    sampling = SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0, seed=0)
    # bf16 kernels differ from the trainer's by more than fp32's 1e-3 on the probe; the gap is reported
    colocated: dict = {"enforce_eager": not args.compile, "check_tolerance": 1e-3 if args.dtype == "float32" else 0.5}
    if device == "cuda":
        colocated["gpu_memory_utilization"] = args.gpu_memory_utilization
    machine = torch.cuda.get_device_name() if device == "cuda" else device
    common = {"size": args.size, "params": params, "dtype": args.dtype, "device": machine, "compile": args.compile,
              "prompts": args.prompts, "samples": args.samples, "new_tokens": args.new_tokens}
    hf = rate(HFRolloutEngine(model, tokenizer, batch_size=args.prompts * args.samples), prompts, args.samples,
              sampling)
    print(json.dumps({"engine": "hf", "tokens_per_s": round(hf, 1), **common}), flush=True)

    from posttrain.rollout.vllm_engine import VLLMRolloutEngine

    if args.skip_colocated:
        return serve_and_time(model, tokenizer, prompts, sampling, hf, colocated, common, args)
    started = time.perf_counter()
    engine = VLLMRolloutEngine(model, tokenizer, VLLMConfig(**colocated), max_model_len=MAX_MODEL_LEN)
    startup = time.perf_counter() - started
    vllm = rate(engine, prompts, args.samples, sampling)
    started = time.perf_counter()
    engine.sync_weights(model)
    push = time.perf_counter() - started
    gap = engine.check_weights(model)
    del engine
    gc.collect()
    print(json.dumps({"engine": "vllm", "tokens_per_s": round(vllm, 1), "speedup": round(vllm / hf, 2),
                      "startup_s": round(startup, 1), "weight_push_s": round(push, 3), "probe_logp_gap": round(gap, 5),
                      **common}), flush=True)

    serve_and_time(model, tokenizer, prompts, sampling, hf, colocated, common, args)


def serve_and_time(model, tokenizer, prompts, sampling, hf: float, colocated: dict, common: dict,
                   args: argparse.Namespace) -> None:
    """The server's throughput and push, then (``--grpo-steps``) the GRPO step with each engine."""
    from posttrain.rollout.vllm_server import VLLMServerEngine

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        started = time.perf_counter()
        server, url = start_server(folder, args)
        try:
            startup = time.perf_counter() - started
            served_options = {"urls": [url], "weight_backend": args.weight_backend}
            remote = VLLMServerEngine(model, tokenizer, VLLMServerConfig(**served_options), parallel=None)
            served = rate(remote, prompts, args.samples, sampling)
            started = time.perf_counter()
            remote.sync_weights(model)
            push = time.perf_counter() - started
            remote.close()
            print(json.dumps({"engine": "vllm-server", "tokens_per_s": round(served, 1),
                              "speedup": round(served / hf, 2), "startup_s": round(startup, 1),
                              "weight_push_s": round(push, 3), **common}), flush=True)
            if args.grpo_steps:
                engines = {"hf": {"engine": "hf"}, "vllm": {"engine": "vllm", "vllm": colocated},
                           "vllm-server": {"engine": "vllm-server", "vllm_server": served_options}}
                if args.skip_colocated:
                    engines = {"vllm-server": engines["vllm-server"]}
                if args.sleep_mode:
                    engines["vllm-sleep"] = {"engine": "vllm", "vllm": {**colocated, "sleep_mode": True}}
                for name, spec in engines.items():
                    timing = grpo_steps(folder, spec, args, Path(folder) / f"grpo-{name}")
                    print(json.dumps({"engine": name, **timing, **common}), flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)


if __name__ == "__main__":
    main()
