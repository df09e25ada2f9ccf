"""PPO, VC-PPO and VAPO on the tiny arithmetic task, from the shared SFT model: value pretraining
raises the critic's explained variance while the policy stays put; each preset raises held-out
accuracy; the critic is saved in a form transformers reloads."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

from posttrain.config import load_recipe
from posttrain.trainers import train
from posttrain.trainers.metrics import read_metrics
from tests.conftest import TASK_OVERRIDE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def recipe(name: str, sft_model: Path, out: Path, *overrides: str):
    return load_recipe(ROOT / "recipes" / f"{name}.yaml", [
        f"model.path={sft_model}", TASK_OVERRIDE, f"trainer.output_dir={out}", "logging.progress=false",
        "trainer.checkpoint_every=0", *overrides])


def test_value_pretraining_raises_explained_variance_before_the_policy_moves(sft_model: Path, tmp_path: Path) -> None:
    spec = recipe("vc_ppo", sft_model, tmp_path, "trainer.steps=12", "trainer.batch_size=128",
                  "trainer.eval_every=0", "algorithm.value_warmup_steps=12",
                  "algorithm.value_warmup_min_explained_variance=null")
    result = train(spec)
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert all(m["critic/warmup"] == 1 and m["updates_applied"] == 0 for m in metrics)
    first = metrics[0]["critic/explained_variance"]
    last = sum(m["critic/explained_variance"] for m in metrics[-3:]) / 3
    assert last > first + 0.2, (first, last)  # a fresh value head starts far off
    assert metrics[-1]["critic/value_loss"] < metrics[0]["critic/value_loss"]
    # the policy did not move: its weights are the SFT model's
    policy = AutoModelForCausalLM.from_pretrained(result.checkpoint / "model")
    start = AutoModelForCausalLM.from_pretrained(sft_model)
    for (name, a), (_, b) in zip(policy.named_parameters(), start.named_parameters()):
        assert torch.equal(a, b), name
    # the critic reloads with plain transformers and predicts the returns it fitted
    critic = AutoModelForTokenClassification.from_pretrained(result.checkpoint / "critic")
    assert critic.config.num_labels == 1


@pytest.mark.parametrize("name", ["ppo", "vc_ppo", "vapo"])
def test_critic_presets_raise_reward_and_held_out_accuracy(name: str, sft_model: Path, tmp_path: Path) -> None:
    spec = recipe(name, sft_model, tmp_path, "trainer.steps=60", "trainer.eval_every=60", "trainer.eval_samples=200")
    assert train(spec).status == "completed"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    before, after = metrics[0]["eval/accuracy"], metrics[-1]["eval/accuracy"]
    assert after > before, (before, after)
    moving = [m["accuracy"] for m in metrics[1:] if m["critic/warmup"] == 0]  # after any value warm-up
    early, late = sum(moving[:15]) / 15, sum(moving[-15:]) / 15
    assert late > early, (early, late)
    assert all(m["nonfinite/skipped"] == 0 for m in metrics[1:])
