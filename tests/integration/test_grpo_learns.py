from pathlib import Path

import pytest

from posttrain.config import validate_recipe
from posttrain.trainers import train
from posttrain.trainers.metrics import read_metrics
from tests.conftest import grpo_recipe

pytestmark = pytest.mark.integration


def test_sft_fixture_is_partly_right(sft_model: Path) -> None:
    metrics = read_metrics(sft_model.parents[2] / "metrics.jsonl")
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < 0.5 * losses[0]
    assert metrics[-1]["eval/accuracy"] >= 0.3 and metrics[0]["eval/accuracy"] < 0.05


def test_grpo_reward_and_accuracy_rise(sft_model: Path, tmp_path: Path) -> None:
    recipe = validate_recipe(grpo_recipe(
        tmp_path,
        model={"path": str(sft_model), "tiny": None},
        trainer={"steps": 80, "batch_size": 32, "eval_every": 10, "eval_samples": 200},
    ))
    result = train(recipe)
    assert result.status == "completed" and result.step == 80
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    rewards = [m["reward/mean"] for m in metrics if "reward/mean" in m]
    early, late = sum(rewards[:20]) / 20, sum(rewards[-20:]) / 20
    assert late > early + 0.05, (early, late)
    # one 200-problem evaluation moves by 3-5 points between neighbouring steps: compare the mean of
    # the evaluations over the second half of the run (steps 50-80) with the start
    evals = {m["step"]: m["eval/accuracy"] for m in metrics if "eval/accuracy" in m}
    late_accuracy = sum(evals[s] for s in (50, 60, 70, 80)) / 4
    assert late_accuracy > evals[0] + 0.04, evals
    assert all(m["nonfinite/total"] == 0 for m in metrics if "nonfinite/total" in m)
    for key in ("reward/std", "policy/clip_fraction", "entropy", "response_length/mean",
                "zero_adv_group_fraction", "time/step_s", "throughput/tokens_per_s", "lr", "grad_norm"):
        assert key in metrics[1], key
    assert (tmp_path / "recipe.yaml").is_file()
    assert (result.checkpoint / "model" / "config.json").is_file()
