"""Accuracy and cost of decoding methods on a frozen model: base sampling, top-k sampling, best-of-N
(a reward model, and the reference answer as an oracle), VAS at several β, and VAS after each IVO
round.

Trains an IVO value model (``recipes/ivo.yaml``: round 0 on the base model's samples, later rounds
on guided samples; a checkpoint at the end of each round) from the given base model, then
evaluates every method on the held-out arithmetic problems with ``posttrain eval``'s harness
(``eval/arithmetic_sampled.yaml``, several samples per problem, the seed fixed) and prints a
markdown table: accuracy of a sample, model token evaluations per returned token, and seconds.

    .venv/bin/python benchmarks/value_guided_decoding.py --base runs/quickstart/sft \\
        [--reward-model runs/arithmetic_rm] [--seed 0] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from posttrain.config import load_recipe
from posttrain.config.schema import RewardConfig
from posttrain.decoding.methods import DecodeSpec
from posttrain.evaluation.harness import run_eval
from posttrain.evaluation.suite import load_suite
from posttrain.models.loading import newest_run_model
from posttrain.trainers import train
from posttrain.trainers.checkpoint import MODEL_DIR, checkpoint_root

ROOT = Path(__file__).parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the frozen model (run folder or model folder)")
    parser.add_argument("--reward-model", help="reward model for best-of-N (run folder or model folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=4, help="samples per held-out problem")
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    parser.add_argument("--ivo-beta", type=float, default=4.0, help="β of the IVO rows (and of the IVO rounds)")
    parser.add_argument("--steps-per-round", type=int, default=100)
    parser.add_argument("--out", default="runs/bench/value_guided_decoding")
    args = parser.parse_args()

    base = str(newest_run_model(Path(args.base)) or args.base)
    out = Path(args.out) / f"seed{args.seed}"
    ivo_dir = out / "ivo"
    rounds = 3
    if not (ivo_dir / "metrics.jsonl").exists():
        recipe = load_recipe(ROOT / "recipes" / "ivo.yaml", [
            f"model.path={base}", f"trainer.seed={args.seed}", f"trainer.steps={rounds * args.steps_per_round}",
            f"trainer.checkpoint_every={args.steps_per_round}", f"decoding.beta={args.ivo_beta}",
            f"trainer.output_dir={ivo_dir}", "trainer.eval_every=0", "logging.progress=false"])
        started = time.perf_counter()
        train(recipe)
        print(f"IVO value model trained in {time.perf_counter() - started:.0f}s")
    value_models = [checkpoint_root(ivo_dir) / f"step-{(i + 1) * args.steps_per_round:06d}" / MODEL_DIR
                    for i in range(rounds)]

    exact = (RewardConfig(name="exact_answer"),)
    methods: list[tuple[str, DecodeSpec]] = [("base sampling (T = 1)", DecodeSpec()),
                                             ("VAS β = 0 (top-10 sampling; the value forwards are wasted)",
                                              DecodeSpec("vas", ((str(value_models[0]), 0.0),)))]
    for n in (4, 16):
        if args.reward_model:
            rm = (RewardConfig(name="reward_model", args={"path": args.reward_model}),)
            methods.append((f"best-of-{n}, reward model", DecodeSpec("best-of-n", n=n, rewards=rm)))
        methods.append((f"best-of-{n}, reference answer (oracle)", DecodeSpec("best-of-n", n=n, rewards=exact)))
    for beta in args.betas:
        methods.append((f"VAS β = {beta:g} (value model of round 0: base samples)",
                        DecodeSpec("vas", ((str(value_models[0]), beta),))))
    for i in (1, 2):
        methods.append((f"VAS β = {args.ivo_beta:g} after IVO round {i}",
                        DecodeSpec("vas", ((str(value_models[i]), args.ivo_beta),))))

    suite = load_suite(ROOT / "eval" / "arithmetic_sampled.yaml",
                       [f"sampling.num_samples={args.samples}", f"sampling.seed={args.seed}", "k=[1]",
                        "metrics=[accuracy]"])
    rows = []
    for name, spec in methods:
        started = time.perf_counter()
        result = run_eval([suite], [base], out / "eval" / str(len(rows)), progress=False, decode=spec)[0]
        seconds = time.perf_counter() - started
        cost = result.metrics.get("evals_per_token", 1.0)  # plain sampling: one evaluation per token
        rows.append({"method": name, "accuracy": result.metrics["accuracy"], "seconds": seconds,
                     "evals_per_token": cost})
        print(f"{name}: {100 * result.metrics['accuracy']:.1f}% in {seconds:.1f}s", flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"\n| method (seed {args.seed}, {args.samples} samples × 400 problems) | accuracy | "
          "model token evaluations per returned token | seconds |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {100 * row['accuracy']:.1f}% | {row['evals_per_token']:.1f} | "
              f"{row['seconds']:.1f} |")


if __name__ == "__main__":
    main()
