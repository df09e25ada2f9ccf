"""Shared fixtures: offline environment, a tiny recipe, and one SFT-ed tiny model per session."""

from __future__ import annotations

import os

for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(key, value)

import copy  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

TASK = {"name": "arithmetic", "digits": 2, "num_train": 3000, "num_test": 200,
        "demonstration_flaw": "drop_units_carry"}
TASK_OVERRIDE = "data.task={" + ", ".join(f"{k}: {v}" for k, v in TASK.items()) + "}"
TINY = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4,
        "num_attention_heads": 2, "num_key_value_heads": 1}


def grpo_recipe(output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small GRPO recipe as a plain mapping; ``sections`` update its sections key by key."""
    raw: dict[str, Any] = {
        "model": {"tiny": dict(TINY)},
        "data": {"task": dict(TASK)},
        "algorithm": {"name": "grpo"},
        "rollout": {"num_generations": 8, "max_new_tokens": 5},
        "rewards": [{"name": "exact_answer"}],
        "trainer": {"steps": 3, "batch_size": 8, "lr": 1e-4, "output_dir": str(output_dir)},
        "logging": {"progress": False},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section].update(values)
        else:
            raw[section] = values
    return copy.deepcopy(raw)


@pytest.fixture(scope="session")
def sft_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model SFT-ed on flawed demonstrations until it is partly right (held-out accuracy >= 0.3)."""
    from posttrain.config import validate_recipe
    from posttrain.trainers import train

    out = tmp_path_factory.mktemp("sft")
    recipe = validate_recipe({
        "model": {"tiny": dict(TINY)},
        "data": {"task": dict(TASK)},
        "algorithm": {"name": "sft"},
        "rollout": {"max_new_tokens": 5},
        "trainer": {"steps": 1500, "batch_size": 64, "lr": 1e-3, "eval_every": 10, "eval_samples": 200,
                    "stop_at_eval_accuracy": 0.3, "output_dir": str(out)},
        "logging": {"progress": False},
    })
    result = train(recipe)
    assert result.status == "completed" and "stop_at_eval_accuracy" in result.reason, result.reason
    return result.checkpoint / "model"
