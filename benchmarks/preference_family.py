"""Held-out preference and answer accuracy before and after DPO, IPO, Pre-DPO and QRPO, from one SFT model.

Every method starts from the same SFT run and trains on the arithmetic task's pairs (chosen:
the correct result; rejected: a plausible wrong one); QRPO trains on both sides of each pair
with their exact-answer rewards and the rewards of reference samples (``posttrain qrpo-prep``).
The table reports, on the held-out split:

* preference accuracy: the fraction of held-out pairs whose chosen completion the model gives a
  higher log-probability than the rejected one (needs no reference, so it is defined before
  training too);
* implicit-reward accuracy: the same with log π/π_SFT, the ranking DPO's implicit reward makes
  relative to the start model (undefined before training: every margin is 0);
* greedy answer accuracy on all held-out problems, and on those with / without a units carry.

    .venv/bin/python benchmarks/preference_family.py --sft runs/quickstart/sft [--seed 0] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from posttrain.config import load_recipe
from posttrain.config.schema import Recipe
from posttrain.data.loading import load_rows
from posttrain.data.preference import OfflineEncoder, build_pairs
from posttrain.data.qrpo_prep import write_qrpo_data
from posttrain.models.loading import load_policy, newest_run_model
from posttrain.quickstart import evaluate_split
from posttrain.trainers import train
from posttrain.trainers.checkpoint import MODEL_DIR
from posttrain.trainers.reference_logprobs import score_completions

RECIPES = Path(__file__).parents[1] / "recipes"
METHODS = ("dpo", "ipo", "pre_dpo", "qrpo")


def held_out_logps(recipe: Recipe, model_path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of the chosen and of the rejected completion of every held-out pair."""
    model, tokenizer = load_policy(recipe.model.model_copy(update={"path": model_path, "tiny": None}))
    data = recipe.data
    rows, origin = load_rows(data, data.eval_split, (data.prompt_field, data.chosen_field, data.rejected_field))
    pairs, _ = build_pairs(rows, origin, OfflineEncoder(tokenizer, data, model.config.max_position_embeddings))
    prompts = [p.prompt_ids for p in pairs]
    logp = score_completions(model.eval(), prompts * 2, [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs],
                             tokenizer.pad_token_id, next(model.parameters()).device, 128, "held-out pairs", False)
    return logp[: len(pairs)], logp[len(pairs) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", required=True, help="SFT run folder (or model folder) every method starts from")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--qrpo-samples", type=int, default=6, help="reference samples per prompt for QRPO")
    parser.add_argument("--override", nargs="*", default=[], help="key.path=value applied to every method")
    parser.add_argument("--out", default="runs/bench/preference_family")
    args = parser.parse_args()

    start = str(newest_run_model(Path(args.sft)) or Path(args.sft))
    out = Path(args.out) / f"seed{args.seed}"
    common = [f"model.path={start}", f"trainer.steps={args.steps}", f"trainer.seed={args.seed}", "trainer.overwrite=true",
              "trainer.eval_every=0", "trainer.checkpoint_every=0", "logging.progress=false",
              f"reference.cache_dir={out / 'cache'}", *args.override]
    base = load_recipe(RECIPES / "dpo.yaml", common)
    start_c, start_r = held_out_logps(base, start)
    results = [{"method": "(start: SFT model)", "preference_accuracy": (start_c > start_r).float().mean().item(),
                "implicit_accuracy": None, "answers": evaluate_split(base, start), "seconds": 0.0}]
    for name in args.methods:
        overrides = [*common, f"trainer.output_dir={out / name}"]
        t0 = time.perf_counter()
        if name == "qrpo":
            data = out / "qrpo_data"
            write_qrpo_data(load_recipe(RECIPES / "qrpo.yaml", overrides), data, args.qrpo_samples)
            overrides += ["data.task=null", f"data.path={data}"]
        result = train(load_recipe(RECIPES / f"{name}.yaml", overrides))
        seconds = time.perf_counter() - t0
        model = str(result.checkpoint / MODEL_DIR)
        chosen, rejected = held_out_logps(base, model)
        results.append({"method": name, "preference_accuracy": (chosen > rejected).float().mean().item(),
                        "implicit_accuracy": (chosen - start_c > rejected - start_r).float().mean().item(),
                        "answers": evaluate_split(base, model), "seconds": seconds})
        print(f"{name}: answers {100 * results[0]['answers']['all']:.1f}% -> "
              f"{100 * results[-1]['answers']['all']:.1f}% in {seconds:.0f} s", flush=True)

    table = [f"held-out split, {args.steps} steps, seed {args.seed}, start {start}",
             "| method | preference acc. | implicit-reward acc. | answers: all | no carry | carry | time |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        implicit = "" if r["implicit_accuracy"] is None else f"{100 * r['implicit_accuracy']:.1f}%"
        a = r["answers"]
        table.append(f"| {r['method']} | {100 * r['preference_accuracy']:.1f}% | {implicit} | {100 * a['all']:.1f}% | "
                     f"{100 * a['no_carry']:.1f}% | {100 * a['units_carry']:.1f}% | {r['seconds']:.0f} s |")
    print("\n".join(table))
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(table) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
