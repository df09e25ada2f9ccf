from pathlib import Path

import pytest
from safetensors.torch import load_file

from posttrain.config import validate_recipe
from posttrain.rewards import register_reward
from posttrain.trainers import train
from posttrain.trainers.metrics import read_metrics
from tests.conftest import grpo_recipe

pytestmark = pytest.mark.integration


@register_reward("test_digit_fraction")
def digit_fraction():
    """A reward a random model already earns sometimes, so its groups carry a gradient."""
    return lambda prompts, completions, answers: [sum(ch.isdigit() for ch in c) / max(len(c), 1)
                                                  for c in completions]


REWARD = [{"name": "test_digit_fraction"}]


def test_kl_to_reference_is_logged_and_starts_at_zero(tmp_path: Path) -> None:
    raw = grpo_recipe(tmp_path, algorithm={"name": "grpo", "beta": 0.1}, trainer={"steps": 3, "lr": 1e-2},
                      rewards=REWARD)
    assert train(validate_recipe(raw)).status == "completed"
    kl = [m["kl"] for m in read_metrics(tmp_path / "metrics.jsonl")]
    assert kl[0] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert kl[-1] > 0


def test_lora_trains_adapters_only_and_uses_the_base_as_reference(tmp_path: Path) -> None:
    raw = grpo_recipe(tmp_path, model={"lora": {"enabled": True, "r": 4, "alpha": 8}},
                      algorithm={"name": "grpo", "beta": 0.1}, trainer={"steps": 3, "lr": 1e-2},
                      rewards=REWARD)
    result = train(validate_recipe(raw))
    assert result.status == "completed"
    saved = result.checkpoint / "model"
    assert (saved / "adapter_config.json").is_file()
    adapters = load_file(saved / "adapter_model.safetensors")
    assert adapters and all("lora_" in name for name in adapters)
    assert any(t.abs().sum() > 0 for name, t in adapters.items() if "lora_B" in name)
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-6) and metrics[-1]["kl"] > 0

    resumed = validate_recipe(grpo_recipe(tmp_path, model={"lora": {"enabled": True, "r": 4, "alpha": 8}},
                                          algorithm={"name": "grpo", "beta": 0.1},
                                          trainer={"steps": 4, "lr": 1e-2, "resume": "auto"}, rewards=REWARD))
    assert train(resumed).step == 4
    assert [m["step"] for m in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]
