"""Per-rank parameter and optimiser memory under DeepSpeed ZeRO stages 0, 2 and 3 (and ZeRO-3 with
the optimiser offloaded to the CPU), for a model of a few hundred million parameters built from a
config (random weights).

The driver launches one ``torchrun`` world per stage (``--procs`` processes: gloo on CPU, NCCL on
GPUs) that builds the model, wraps it with ``deepspeed.initialize`` (a torch AdamW, fp32), takes one
training step so the optimiser state exists, and reports for each rank:

- parameters held: the full parameters (stages 0-2) or this rank's partition (stage 3), plus the
  optimiser's fp32 master partition where ZeRO keeps one;
- optimiser state held: Adam's two moments as this rank stores them;
- on a GPU, ``torch.cuda.max_memory_allocated``; on a CPU, the process's resident memory.

    python benchmarks/zero_memory.py [--procs 2] [--size 245m|424m] [--stages 0 2 3 3-offload]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {"245m": (1024, 4096, 12, 16, 2, 32000), "424m": (1024, 4096, 24, 16, 2, 32000),
         "20m": (256, 1024, 4, 4, 2, 32000)}


def deepspeed_config(stage: str) -> dict:
    zero: dict = {"stage": int(stage[0])}
    if stage.endswith("offload"):
        zero["offload_optimizer"] = {"device": "cpu"}
    return {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1, "zero_optimization": zero,
            "zero_allow_untested_optimizer": True}


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def worker(args: argparse.Namespace) -> None:
    import deepspeed
    import psutil
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, Qwen2Config

    cuda = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    rank = dist.get_rank()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    hidden, intermediate, layers, heads, kv, vocab = SIZES[args.size]
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    if args.stage.endswith("offload"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        optimizer = DeepSpeedCPUAdam(model.parameters(), lr=1e-5)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=deepspeed_config(args.stage))
    ids = torch.randint(vocab, (1, 64), device=engine.device)
    loss = engine(input_ids=ids, labels=ids).loss
    engine.backward(loss)
    engine.step()
    held = tensor_bytes(getattr(p, "ds_tensor", p) for p in engine.module.parameters())
    base = getattr(engine.optimizer, "optimizer", engine.optimizer)
    moments = tensor_bytes(t for state in base.state.values() for t in state.values()
                           if torch.is_tensor(t) and t.dim() > 0)
    masters = 0
    for name in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):
        masters += tensor_bytes(getattr(engine.optimizer, name, []) or [])
    report = {"rank": rank, "parameters": parameters, "params_bytes": held, "master_bytes": masters,
              "optimizer_bytes": moments, "loss": loss.item(),
              "device_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
              "rss_bytes": psutil.Process().memory_info().rss}
    reports = [None] * dist.get_world_size()
    dist.all_gather_object(reports, report)
    if rank == 0:
        Path(args.report).write_text(json.dumps(reports))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--size", default="245m", choices=sorted(SIZES))
    parser.add_argument("--stages", nargs="+", default=["0", "2", "3"], choices=["0", "2", "3", "3-offload"])
    parser.add_argument("--out", help="write every rank's numbers as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    results = {}
    for index, stage in enumerate(args.stages):
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "report.json"
            command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.procs}",
                       f"--master_port={29533 + index}", __file__, "--worker", "--stage", stage, "--size", args.size,
                       "--report", str(report)]
            print(f"ZeRO-{stage}: {' '.join(command[2:])}", flush=True)
            subprocess.run(command, check=True, env={**os.environ, "TMPDIR": folder})
            results[stage] = json.loads(report.read_text())
    gib = 2**30
    first = next(iter(results.values()))[0]
    print(f"\n{first['parameters'] / 1e6:.0f}M parameters, fp32, AdamW, {args.procs} processes; per rank (rank 0):\n")
    print("| ZeRO stage | parameters held | fp32 master partition | Adam moments | params + optimiser | peak device memory | resident memory |")
    print("|---|---|---|---|---|---|---|")
    for stage, reports in results.items():
        r = reports[0]
        total = r["params_bytes"] + r["master_bytes"] + r["optimizer_bytes"]
        peak = "" if r["device_peak_bytes"] is None else f"{r['device_peak_bytes'] / gib:.2f} GiB"
        print(f"| {stage} | {r['params_bytes'] / gib:.2f} GiB | {r['master_bytes'] / gib:.2f} GiB | "
              f"{r['optimizer_bytes'] / gib:.2f} GiB | {total / gib:.2f} GiB | {peak} | {r['rss_bytes'] / gib:.2f} GiB |")
    if args.out:
        Path(args.out).write_text(json.dumps({"procs": args.procs, "size": args.size, "results": results}, indent=2))


if __name__ == "__main__":
    main()
