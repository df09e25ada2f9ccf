"""The quickstart: a fresh tiny model learns arithmetic from flawed demonstrations (SFT), then
goes beyond them with GRPO and the exact-answer verifier. SFT continued for the same wall time
is reported beside RL, so the gain can be told apart from "more training"."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from posttrain.config.loading import load_recipe
from posttrain.config.schema import Recipe
from posttrain.data.loading import load_rows
from posttrain.data.prompts import tokenize_examples
from posttrain.evaluation.accuracy import greedy_accuracy
from posttrain.models.loading import load_policy
from posttrain.plotting import plot_runs
from posttrain.rollout.hf import HFRolloutEngine
from posttrain.trainers import train
from posttrain.trainers.checkpoint import MODEL_DIR
from posttrain.trainers.metrics import read_metrics


def run_quickstart(recipes: str | Path, output_dir: str | Path, seed: int = 0, compare: bool = True) -> dict[str, Any]:
    recipes, out = Path(recipes), Path(output_dir)
    common = [f"trainer.seed={seed}", "trainer.overwrite=true"]
    sft = load_recipe(recipes / "sft.yaml", [*common, f"model.tiny.seed={seed}", f"trainer.output_dir={out / 'sft'}"])
    _say(f"stage 1/3: SFT on flawed demonstrations until held-out accuracy >= {sft.trainer.stop_at_eval_accuracy}")
    sft_run = train(sft)
    start_model = str(sft_run.checkpoint / MODEL_DIR)

    from_sft = [*common, f"model.path={start_model}", "model.tiny=null"]
    grpo = load_recipe(recipes / "grpo.yaml", [*from_sft, f"trainer.output_dir={out / 'grpo'}"])
    _say(f"stage 2/3: GRPO for {grpo.trainer.steps} steps from {start_model}")
    grpo_run = train(grpo)
    rl_seconds = _train_seconds(grpo_run.output_dir / grpo.logging.metrics_file)

    arms = {"after SFT (start of RL)": start_model, "GRPO": str(grpo_run.checkpoint / MODEL_DIR)}
    if compare:
        cont = load_recipe(recipes / "sft.yaml", [
            *from_sft, f"trainer.output_dir={out / 'sft_continued'}", "trainer.stop_at_eval_accuracy=null",
            "trainer.eval_every=0", "trainer.steps=100000", f"trainer.max_time_s={rl_seconds:.1f}",
        ])
        _say(f"stage 3/3: SFT continued for the same {rl_seconds:.0f} s of training, for comparison")
        cont_run = train(cont)
        arms[f"SFT continued {rl_seconds:.0f}s"] = str(cont_run.checkpoint / MODEL_DIR)

    results = {name: evaluate_split(grpo, path) for name, path in arms.items()}
    before, after = results["after SFT (start of RL)"]["all"], results["GRPO"]["all"]
    summary = {"seed": seed, "rl_seconds": rl_seconds, "rl_steps": grpo.trainer.steps, "results": results,
               "rl_gain_points": 100 * (after - before)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot = plot_runs([grpo_run.output_dir], out / "reward.png", ["reward/mean", "eval/accuracy"])
    print(format_table(results, grpo.data.task.num_test if grpo.data.task else 0))
    print(f"\nGRPO changed held-out greedy accuracy by {summary['rl_gain_points']:+.1f} points "
          f"({100 * before:.1f}% -> {100 * after:.1f}%) in {rl_seconds:.0f} s of training.")
    print(f"reward curve: {plot}\nsummary: {out / 'summary.json'}")
    return summary


def evaluate_split(recipe: Recipe, model_path: str) -> dict[str, float]:
    """Greedy accuracy on the whole held-out split, overall and for problems with / without a units carry."""
    spec = recipe.model.model_copy(update={"path": model_path, "tiny": None})
    model, tokenizer = load_policy(spec)
    rows, origin = load_rows(recipe.data, recipe.data.eval_split, (recipe.data.prompt_field, recipe.data.answer_field))
    examples = tokenize_examples(rows, origin, tokenizer, recipe.data, model.config.max_position_embeddings,
                                 recipe.rollout.max_new_tokens)
    result = greedy_accuracy(HFRolloutEngine(model, tokenizer), examples, recipe.rollout.max_new_tokens)
    by_carry: dict[str, list[bool]] = {"true": [], "false": []}
    for row, correct in zip(rows, result.correct):
        by_carry[row.get("units_carry", "false")].append(correct)
    return {
        "all": result.accuracy,
        "units_carry": sum(by_carry["true"]) / max(1, len(by_carry["true"])),
        "no_carry": sum(by_carry["false"]) / max(1, len(by_carry["false"])),
    }


def format_table(results: dict[str, dict[str, float]], count: int) -> str:
    lines = [f"\nheld-out greedy accuracy ({count} problems)", f"{'model':32s} {'all':>7s} {'no carry':>9s} {'carry':>7s}"]
    for name, r in results.items():
        lines.append(f"{name:32s} {100 * r['all']:6.1f}% {100 * r['no_carry']:8.1f}% {100 * r['units_carry']:6.1f}%")
    return "\n".join(lines)


def _train_seconds(metrics_path: Path) -> float:
    return sum(row.get("time/step_s", 0.0) for row in read_metrics(metrics_path))


def _say(message: str) -> None:
    print(f"\n== {message}", file=sys.stderr, flush=True)
