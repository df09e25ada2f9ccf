from pathlib import Path

import pytest
import yaml

from posttrain.config import ConfigError, load_recipe, recipe_to_yaml, validate_recipe
from tests.conftest import grpo_recipe

pytestmark = pytest.mark.unit


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_preset_fills_switches_and_explicit_values_win(tmp_path: Path) -> None:
    recipe = validate_recipe(grpo_recipe(tmp_path, algorithm={"name": "dr_grpo", "clip_ratio_high": 0.28}))
    assert recipe.algorithm.norm_adv_by_std is False
    assert recipe.algorithm.loss_agg_mode == "seq-mean-token-sum-norm"
    assert recipe.algorithm.clip_ratio_high == 0.28
    assert recipe.algorithm.family == "online"


def test_overrides_parse_yaml_values(tmp_path: Path) -> None:
    path = write(tmp_path, grpo_recipe(tmp_path))
    recipe = load_recipe(path, ["trainer.steps=7", "algorithm.beta=0.04", "logging.progress=true",
                                "trainer.betas=[0.9, 0.95]"])
    assert recipe.trainer.steps == 7 and recipe.algorithm.beta == 0.04 and recipe.logging.progress is True
    assert recipe.trainer.betas == (0.9, 0.95)


def test_misspelt_keys_get_path_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, grpo_recipe(tmp_path))
    with pytest.raises(ConfigError) as err:
        load_recipe(path, ["algorithm.clip_ratio_hihg=0.3", "trainer.stepz=3"])
    message = str(err.value)
    assert "algorithm.clip_ratio_hihg: unknown key; did you mean 'algorithm.clip_ratio_high'?" in message
    assert "trainer.stepz: unknown key; did you mean 'trainer.steps'?" in message


def test_misspelt_key_inside_a_list_item(tmp_path: Path) -> None:
    raw = grpo_recipe(tmp_path, rewards=[{"name": "exact_answer", "wieght": 2}])
    with pytest.raises(ConfigError, match=r"rewards\.0\.wieght: unknown key; did you mean 'rewards\.0\.weight'"):
        validate_recipe(raw)


def test_wrong_type_names_field_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rollout\.temperature: .*got 'hot'"):
        validate_recipe(grpo_recipe(tmp_path, rollout={"temperature": "hot"}))


def test_missing_required_section(tmp_path: Path) -> None:
    raw = grpo_recipe(tmp_path)
    del raw["data"]
    with pytest.raises(ConfigError, match="data: required field is missing"):
        validate_recipe(raw)


def test_model_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of model.path and model.tiny"):
        validate_recipe(grpo_recipe(tmp_path, model={"path": "x", "tiny": {}}))


def test_unknown_algorithm_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown algorithm 'grpoo'; known: .*grpo"):
        validate_recipe(grpo_recipe(tmp_path, algorithm={"name": "grpoo"}))


def test_minibatch_must_divide_rollout_batch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="minibatch_size=5 must divide"):
        validate_recipe(grpo_recipe(tmp_path, trainer={"minibatch_size": 5}))


def test_bad_override_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, grpo_recipe(tmp_path))
    with pytest.raises(ConfigError, match="key.path=value"):
        load_recipe(path, ["trainer.steps"])


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    recipe = validate_recipe(grpo_recipe(tmp_path, algorithm={"name": "dr_grpo"}))
    again = validate_recipe(yaml.safe_load(recipe_to_yaml(recipe)))
    assert again == recipe


@pytest.mark.parametrize("path", sorted(Path("recipes").rglob("*.yaml")), ids=str)
def test_shipped_recipes_validate(path: Path) -> None:
    if "accelerate" in path.parts:
        pytest.skip("accelerate launcher config, not a recipe")
    load_recipe(path)


@pytest.mark.parametrize(
    ("name", "switches"),
    [
        ("mapo", {"advantage_estimator": "mapo", "loss_agg_mode": "seq-mean-token-mean"}),
        ("bnpo", {"advantage_estimator": "bnpo", "dual_clip": 10.0, "clip_ratio_high": 0.28,
                  "loss_agg_mode": "seq-mean-token-sum"}),
        ("lens", {"advantage_estimator": "lens", "lens_negative_weight": 0.25}),
        ("dapo", {"dynamic_sampling": True, "loss_agg_mode": "token-mean", "clip_ratio_high": 0.28}),
    ],
)
def test_group_presets_resolve_their_switches(tmp_path: Path, name: str, switches: dict) -> None:
    algorithm = validate_recipe(grpo_recipe(tmp_path, algorithm={"name": name})).algorithm
    assert {key: getattr(algorithm, key) for key in switches} == switches


def test_group_switch_cross_checks_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bnpo_components names rewards that are not in rewards: \['format'\]"):
        validate_recipe(grpo_recipe(tmp_path, algorithm={"name": "bnpo", "bnpo_components": ["format"]}))
    with pytest.raises(ConfigError, match="overlong_buffer=9 exceeds rollout.max_new_tokens=5"):
        validate_recipe(grpo_recipe(tmp_path, algorithm={"name": "dapo", "overlong_buffer": 9}))
    with pytest.raises(ConfigError, match="kl_placement='reward' makes rewards non-binary"):
        validate_recipe(grpo_recipe(tmp_path, algorithm={"name": "lens", "beta": 0.1, "kl_placement": "reward"}))


def test_reward_labels_must_be_unique(tmp_path: Path) -> None:
    rewards = [{"name": "exact_answer", "label": "acc"}, {"name": "format", "label": "acc",
                                                          "args": {"pattern": "x"}}]
    with pytest.raises(ConfigError, match=r"labels must be unique; repeated: \['acc'\]"):
        validate_recipe(grpo_recipe(tmp_path, rewards=rewards))
    twice = validate_recipe(grpo_recipe(tmp_path, rewards=[{"name": "exact_answer"}, {"name": "exact_answer"}]))
    assert len(twice.rewards) == 2  # unlabelled repeats are numbered: exact_answer, exact_answer_2


def test_prompt_centred_value_targets_need_several_samples_per_prompt(tmp_path: Path) -> None:
    raw = grpo_recipe(tmp_path, algorithm={"name": "ivo", "group_centred_values": True},
                      rollout={"num_generations": 1})
    with pytest.raises(ConfigError, match=r"algorithm.group_centred_values.*rollout.num_generations=1"):
        validate_recipe(raw)
    raw["rollout"]["num_generations"] = 2
    assert validate_recipe(raw).algorithm.group_centred_values
