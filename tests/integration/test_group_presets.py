"""Every group-family recipe under recipes/ trains the SFT-ed tiny model with rising reward,
and the switches the presets are built from show up in the metrics."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from posttrain.cli import main
from posttrain.config import load_recipe
from posttrain.models.loading import load_causal_lm
from posttrain.trainers import train
from posttrain.trainers.metrics import read_metrics
from tests.conftest import TASK_OVERRIDE

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).parents[2] / "recipes"


def _overrides(sft_model: Path, out: Path, steps: int) -> list[str]:
    return [f"model.path={sft_model}", TASK_OVERRIDE, f"trainer.steps={steps}", "trainer.eval_every=0",
            "trainer.checkpoint_every=0", f"trainer.output_dir={out}", "logging.progress=false"]


@pytest.mark.parametrize("name", ["dr_grpo", "dapo", "mapo", "bnpo", "lens"])
def test_preset_recipe_raises_reward(name: str, sft_model: Path, tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES / f"{name}.yaml", _overrides(sft_model, tmp_path, 60))
    assert recipe.algorithm.name == name
    assert train(recipe).status == "completed"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    rewards = [m["accuracy"] for m in metrics]
    early, late = sum(rewards[:15]) / 15, sum(rewards[-15:]) / 15
    assert late > early, (name, early, late)
    assert all(m["nonfinite/skipped"] == 0 for m in metrics)
    if name == "dapo":
        assert all(m["dynamic_sampling/kept_groups"] <= recipe.trainer.batch_size for m in metrics)
        assert sum(m["dynamic_sampling/dropped_groups"] for m in metrics) > 0
        assert "reward/overlong_penalty" in metrics[0]
    if name == "lens":  # all-wrong groups carry gradient: fewer zero-advantage groups than uniform-reward ones
        zero = sum(m["zero_adv_group_fraction"] for m in metrics)
        uniform = sum(m["uniform_reward_group_fraction"] for m in metrics)
        assert zero < 0.5 * uniform, (zero, uniform)


def test_kl_in_reward_shapes_the_score(sft_model: Path, tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES / "grpo.yaml", [*_overrides(sft_model, tmp_path, 4), "algorithm.beta=0.5",
                                                  "algorithm.kl_placement=reward", "algorithm.kl_estimator=k1",
                                                  "trainer.lr=1e-3"])
    assert train(recipe).status == "completed"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert metrics[0]["reward/kl_in_reward"] == pytest.approx(0.0, abs=1e-5)  # the policy starts as the reference
    assert metrics[-1]["reward/kl_in_reward"] != pytest.approx(0.0, abs=1e-5)
    assert metrics[-1]["reward/mean"] == pytest.approx(
        metrics[-1]["reward/exact_answer"] - 0.5 * metrics[-1]["reward/kl_in_reward"], abs=1e-5)


def test_lora_recipe_trains_and_merges_into_a_plain_model(sft_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    recipe = load_recipe(RECIPES / "grpo_lora.yaml", [*_overrides(sft_model, run, 3), "trainer.lr=1e-2"])
    result = train(recipe)
    assert (result.checkpoint / "model" / "adapter_config.json").is_file()
    assert not (result.checkpoint / "model" / "model.safetensors").exists()  # adapters only, no full copy

    merged_dir = tmp_path / "merged"
    assert main(["merge", str(run), "--out", str(merged_dir)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    base = load_causal_lm(recipe.model.model_copy(update={"lora": recipe.model.lora.model_copy(
        update={"enabled": False})}), torch.device("cpu"))
    from peft import PeftModel

    adapted = PeftModel.from_pretrained(base, str(result.checkpoint / "model")).eval()
    ids = torch.tensor([[5, 17, 23, 40, 41]])
    with torch.no_grad():
        expected = adapted(ids).logits
        with adapted.disable_adapter():
            assert not torch.allclose(adapted(ids).logits, expected, atol=1e-4)  # the adapters learned something
        assert torch.allclose(merged(ids).logits, expected, atol=1e-4)
    assert main(["merge", str(sft_model), "--out", str(tmp_path / "x")]) == 2  # not a LoRA checkpoint


def test_reasoning_gym_recipe_runs_end_to_end(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES / "reasoning_gym_grpo.yaml", [
        "trainer.steps=2", "trainer.batch_size=4", f"trainer.output_dir={tmp_path}", "logging.progress=false",
        "data.reasoning_gym.size=40", "data.reasoning_gym.test_size=8"])
    assert train(recipe).status == "completed"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    assert metrics[-1]["reward/reasoning_gym/errors"] == 0 and "time/reward/reasoning_gym_s" in metrics[-1]
