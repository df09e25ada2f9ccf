"""Held-out accuracy before and after each group-family preset, from one SFT model.

Runs ``recipes/<preset>.yaml`` for every preset named, starting from the same SFT run, and
prints a markdown table: held-out greedy accuracy (all / no-carry / carry problems) before
and after, the mean training reward of the first and last 20 steps, and how many groups had
zero advantage against how many had uniform rewards. ``--problems units_carry`` trains and
evaluates on carry problems only, a split the flawed SFT model almost always gets wrong.

    .venv/bin/python benchmarks/group_presets.py --sft runs/quickstart/sft [--steps 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from posttrain.config import load_recipe
from posttrain.models.loading import newest_run_model
from posttrain.quickstart import evaluate_split
from posttrain.trainers import train
from posttrain.trainers.checkpoint import MODEL_DIR
from posttrain.trainers.metrics import read_metrics

RECIPES = Path(__file__).parents[1] / "recipes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", required=True, help="SFT run folder (or model folder) every preset starts from")
    parser.add_argument("--presets", nargs="+", default=["grpo", "dr_grpo", "dapo", "mapo", "bnpo", "lens"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problems", default="all", choices=["all", "units_carry", "no_units_carry"])
    parser.add_argument("--num-train", type=int, help="training problems (carry-only 2-digit has 3,645 in all)")
    parser.add_argument("--override", nargs="*", default=[], help="key.path=value applied to every preset")
    parser.add_argument("--out", default="runs/bench/group_presets")
    args = parser.parse_args()

    start = newest_run_model(Path(args.sft)) or Path(args.sft)
    out = Path(args.out) / f"{args.problems}-seed{args.seed}"
    rows = []
    before = None
    for name in args.presets:
        recipe = load_recipe(RECIPES / f"{name}.yaml", [
            f"model.path={start}", f"trainer.steps={args.steps}", f"trainer.seed={args.seed}",
            f"data.task.problems={args.problems}", f"trainer.output_dir={out / name}", "trainer.overwrite=true",
            "trainer.eval_every=0", "trainer.checkpoint_every=0", "logging.progress=false",
            *([f"data.task.num_train={args.num_train}"] if args.num_train else []), *args.override,
        ])
        if before is None:
            before = evaluate_split(recipe, str(start))
            rows.append(("(start: SFT model)", before, None, 0.0))
        t0 = time.perf_counter()
        result = train(recipe)
        seconds = time.perf_counter() - t0
        after = evaluate_split(recipe, str(result.checkpoint / MODEL_DIR))
        rows.append((name, after, read_metrics(out / name / "metrics.jsonl"), seconds))
        print(f"{name}: {100 * before['all']:.1f}% -> {100 * after['all']:.1f}% in {seconds:.0f} s", flush=True)

    table = [f"held-out greedy accuracy, {args.steps} steps, seed {args.seed}, problems={args.problems}",
             "| preset | all | no carry | carry | reward first/last 20 steps | zero-adv / uniform groups | time |",
             "|---|---|---|---|---|---|---|"]
    for name, acc, metrics, seconds in rows:
        if metrics is None:
            table.append(f"| {name} | {100 * acc['all']:.1f}% | {100 * acc['no_carry']:.1f}% | "
                         f"{100 * acc['units_carry']:.1f}% | | | |")
            continue
        first = sum(m["accuracy"] for m in metrics[:20]) / len(metrics[:20])
        last = sum(m["accuracy"] for m in metrics[-20:]) / len(metrics[-20:])
        zero = sum(m["zero_adv_group_fraction"] for m in metrics) / len(metrics)
        uniform = sum(m["uniform_reward_group_fraction"] for m in metrics) / len(metrics)
        table.append(f"| {name} | {100 * acc['all']:.1f}% | {100 * acc['no_carry']:.1f}% | "
                     f"{100 * acc['units_carry']:.1f}% | {first:.3f} → {last:.3f} | {zero:.2f} / {uniform:.2f} | "
                     f"{seconds:.0f} s |")
    print("\n".join(table))
    (out / "table.md").write_text("\n".join(table) + "\n")
    (out / "results.json").write_text(json.dumps([{"preset": n, "accuracy": a, "seconds": s}
                                                  for n, a, _, s in rows], indent=2))


if __name__ == "__main__":
    main()
