"""Launch/recipe consistency: a launch that cannot reproduce the recipe is refused at start with an
error naming the recipe field and the launch setting; a single process is never refused."""

from __future__ import annotations

from typing import Any

import pytest

from posttrain.config import validate_recipe
from posttrain.config.loading import ConfigError
from posttrain.trainers.parallel import check_launch

pytestmark = pytest.mark.unit

ZERO3 = {"zero_optimization": {"stage": 3}, "gradient_accumulation_steps": 1, "gradient_clipping": "auto"}


def recipe(name: str = "grpo", **trainer: Any):
    raw: dict[str, Any] = {"model": {"tiny": {}}, "data": {"task": {}}, "algorithm": {"name": name},
                           "trainer": {"batch_size": 8, **trainer}}
    if name == "grpo":
        raw["rollout"] = {"num_generations": 4}
    return validate_recipe(raw)


@pytest.mark.parametrize(("spec", "world", "ds", "zero3_init", "names"), [
    (recipe(batch_size=6), 4, None, False, ["trainer.batch_size=6", "num_processes=4"]),
    (recipe(minibatch_size=2), 4, None, False, ["trainer.minibatch_size=2", "num_processes=4"]),
    (recipe(), 2, {**ZERO3, "gradient_accumulation_steps": 4}, False,
     ["gradient_accumulation_steps=4", "trainer.batch_size=8"]),
    (recipe(max_grad_norm=1.0), 2, {**ZERO3, "gradient_clipping": 0.5}, False,
     ["gradient_clipping=0.5", "trainer.max_grad_norm=1.0"]),
    (recipe("qrpo"), 2, None, False, ["algorithm.name='qrpo'", "num_processes=2"]),
    (validate_recipe({"model": {"tiny": {}}, "data": {"task": {}}, "algorithm": {"name": "grpo"},
                      "rollout": {"num_generations": 4}, "trainer": {"batch_size": 8},
                      "rewards": [{"name": "reward_model", "args": {"path": "rm"}}]}), 2, ZERO3, True,
     ["reward_model", "zero3_init_flag"]),
    (validate_recipe({"model": {"tiny": {}, "lora": {"enabled": True}}, "data": {"task": {}},
                      "algorithm": {"name": "grpo"}, "rollout": {"num_generations": 4, "engine": "vllm"},
                      "trainer": {"batch_size": 8}}), 2, ZERO3, False,
     ["rollout.engine='vllm'", "model.lora.enabled", "zero_stage=3"]),
])
def test_inconsistent_launches_name_both_settings(spec, world: int, ds: dict | None, zero3_init: bool,
                                                   names: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        check_launch(spec, world, ds, zero3_init)
    for name in names:
        assert name in str(err.value)


def test_consistent_launches_pass() -> None:
    check_launch(recipe(batch_size=8, minibatch_size=16), 2, ZERO3)
    check_launch(recipe("qrpo", batch_size=3), 1, None)
    colocated = validate_recipe({"model": {"tiny": {}}, "data": {"task": {}}, "algorithm": {"name": "grpo"},
                                 "rollout": {"num_generations": 4, "engine": "vllm"}, "trainer": {"batch_size": 8}})
    check_launch(colocated, 2, ZERO3)  # each process gathers the sharded policy into its own engine
    check_launch(recipe(max_grad_norm=0.5), 2, {**ZERO3, "gradient_clipping": 0.5})
