"""PPO vs VC-PPO vs VAPO, and VAPO with each component switched off, from one SFT model.

Runs ``recipes/{ppo,vc_ppo,vapo}.yaml`` from the same SFT run, then VAPO once per ablation,
and prints a markdown table: held-out greedy accuracy (all / no-carry / carry problems)
before and after, the critic's explained variance at the end of the value warm-up (or at
step 1 without one) and over the last 10 steps, and wall time.

    .venv/bin/python benchmarks/critic_family.py --sft runs/quickstart/sft [--steps 100] [--seed 0]
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

#: (row name, recipe, overrides): VAPO with one component switched off per row
RUNS: list[tuple[str, str, list[str]]] = [
    ("ppo", "ppo", []),
    ("vc_ppo", "vc_ppo", []),
    ("vapo", "vapo", []),
    ("vapo − value pretraining", "vapo", ["algorithm.value_warmup_steps=0"]),
    ("vapo − decoupled GAE (λ_value 0.95)", "vapo", ["algorithm.gae_lambda_value=0.95"]),
    ("vapo − length-adaptive λ (λ_policy 0.95)", "vapo", ["algorithm.length_adaptive_alpha=null"]),
    ("vapo − token-level loss (seq-mean-token-mean)", "vapo", ["algorithm.loss_agg_mode=seq-mean-token-mean"]),
    ("vapo − clip-higher (ε_high 0.2)", "vapo", ["algorithm.clip_ratio_high=0.2"]),
    ("vapo − positive-example NLL", "vapo", ["algorithm.positive_nll_coef=0"]),
    ("vapo − group sampling (256 prompts × 1)", "vapo", ["rollout.num_generations=1", "trainer.batch_size=256"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", required=True, help="SFT run folder (or model folder) every run starts from")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="row names to run (default all)")
    parser.add_argument("--out", default="runs/bench/critic_family")
    args = parser.parse_args()

    start = newest_run_model(Path(args.sft)) or Path(args.sft)
    out = Path(args.out) / f"seed{args.seed}"
    results = []
    for index, (name, recipe_name, overrides) in enumerate(RUNS):
        if args.only and name not in args.only:
            continue
        recipe = load_recipe(RECIPES / f"{recipe_name}.yaml", [
            f"model.path={start}", f"trainer.steps={args.steps}", f"trainer.seed={args.seed}",
            f"trainer.output_dir={out / f'run{index}'}", "trainer.overwrite=true", "trainer.eval_every=0",
            "trainer.checkpoint_every=0", "logging.progress=false", *overrides])
        if not results:
            results.append({"name": "(start: SFT model)", "accuracy": evaluate_split(recipe, str(start))})
        t0 = time.perf_counter()
        run = train(recipe)
        seconds = time.perf_counter() - t0
        metrics = read_metrics(out / f"run{index}" / "metrics.jsonl")
        warm = [m for m in metrics if m.get("critic/warmup") == 1]
        ev_start = (warm[-1] if warm else metrics[0])["critic/explained_variance"]
        ev_first = metrics[0]["critic/explained_variance"]
        ev_end = sum(m["critic/explained_variance"] for m in metrics[-10:]) / len(metrics[-10:])
        accuracy = evaluate_split(recipe, str(run.checkpoint / MODEL_DIR))
        results.append({"name": name, "accuracy": accuracy, "ev_first": ev_first, "ev_policy_start": ev_start,
                        "ev_end": ev_end, "warmup_steps": len(warm), "seconds": seconds})
        print(f"{name}: {100 * results[0]['accuracy']['all']:.1f}% -> {100 * accuracy['all']:.1f}% "
              f"in {seconds:.0f} s", flush=True)

    table = [f"held-out greedy accuracy, {args.steps} steps, seed {args.seed}",
             "| run | all | no carry | carry | EV step 1 → policy starts → last 10 | time |",
             "|---|---|---|---|---|---|"]
    for r in results:
        a = r["accuracy"]
        ev = (f"{r['ev_first']:.2f} → {r['ev_policy_start']:.2f} ({r['warmup_steps']} warm-up) → {r['ev_end']:.2f}"
              if "ev_end" in r else "")
        time_cell = f"{r['seconds']:.0f} s" if "seconds" in r else ""
        table.append(f"| {r['name']} | {100 * a['all']:.1f}% | {100 * a['no_carry']:.1f}% | "
                     f"{100 * a['units_carry']:.1f}% | {ev} | {time_cell} |")
    print("\n".join(table))
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(table) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
