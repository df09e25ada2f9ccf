"""The critic: forward pass shape and masking, scalar and categorical heads, loading from a reward
model or a saved critic (and the error on a head of the wrong shape), and GAE inside the loop."""

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from posttrain.batch import RolloutBatch
from posttrain.config import validate_recipe
from posttrain.config.schema import CriticConfig, ModelConfig, TinyModelConfig
from posttrain.models.critic import load_critic
from posttrain.models.loading import ModelLoadError
from posttrain.models.tiny import build_tiny_model
from posttrain.trainers import critic as critic_module
from posttrain.trainers.critic import Critic, critic_values
from posttrain.trainers.parallel import Parallel

pytestmark = pytest.mark.unit

TINY = TinyModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
POLICY = ModelConfig(tiny=TINY)
CPU = torch.device("cpu")


def batch_of(prompt: list[int], response: list[int], pad: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = prompt + response + [pad] * (width - len(response))
    mask = [1] * (len(prompt) + len(response)) + [0] * (width - len(response))
    return torch.tensor([ids]), torch.tensor([mask])


def test_values_are_per_response_token_and_ignore_right_padding() -> None:
    critic = load_critic(CriticConfig(), POLICY, CPU).eval()
    prompt, response = [40, 41, 42], [50, 51, 52]
    ids, mask = batch_of(prompt, response, 0, 5)
    with torch.no_grad():
        values, logits = critic_values(critic, ids, mask, 5, None)
        padded, _ = critic_values(critic, *batch_of(prompt, response, 7, 5), 5, None)
        full = critic(input_ids=ids[:, :6], attention_mask=mask[:, :6]).logits[0, :, 0]
    assert values.shape == (1, 5) and logits.shape == (1, 5, 1)
    torch.testing.assert_close(padded[:, :3], values[:, :3])  # padding content does not leak into valid values
    # the value of response token t is read at the position before it: the state it is emitted from
    torch.testing.assert_close(values[0, :3], full[2:5])


def test_categorical_head_values_are_expectations_over_the_support() -> None:
    spec = CriticConfig(head="hl_gauss", num_bins=11, v_min=-0.5, v_max=1.5)
    critic = load_critic(spec, POLICY, CPU).eval()
    support = critic_module.categorical_support("hl_gauss", -0.5, 1.5, 11)
    with torch.no_grad():
        values, logits = critic_values(critic, *batch_of([40, 41], [50, 51], 0, 2), 2, support)
    assert logits.shape == (1, 2, 11)
    torch.testing.assert_close(values, (logits.softmax(-1) * support).sum(-1))
    assert bool(((values > -0.5) & (values < 1.5)).all())


def test_critic_from_a_reward_model_keeps_its_score_head(tmp_path: Path) -> None:
    reward_model, _ = build_tiny_model(TINY, head="reward")
    reward_model.save_pretrained(tmp_path / "rm")
    critic = load_critic(CriticConfig(path=str(tmp_path / "rm")), POLICY, CPU)
    torch.testing.assert_close(critic.score.weight, reward_model.score.weight)


def test_a_value_head_of_another_shape_is_an_error_naming_both(tmp_path: Path) -> None:
    load_critic(CriticConfig(), POLICY, CPU).save_pretrained(tmp_path / "critic")
    with pytest.raises(ModelLoadError, match=r"shape \[1, 32\].*needs \[51, 32\]"):
        load_critic(CriticConfig(path=str(tmp_path / "critic"), head="hl_gauss"), POLICY, CPU)


def test_critic_algorithms_get_critic_defaults() -> None:
    recipe = validate_recipe({"model": {"tiny": {}}, "data": {"task": {}}, "algorithm": {"name": "vapo"},
                              "rollout": {"num_generations": 1}})
    assert recipe.critic.head == "scalar" and recipe.critic.path is None
    assert (recipe.algorithm.gae_lambda_value, recipe.algorithm.clip_ratio_high) == (1.0, 0.28)


def gae_batch() -> RolloutBatch:
    """One prompt token and the worked example's 3-token response, plus one padded column."""
    return RolloutBatch(
        prompt_ids=torch.tensor([[5]]), prompt_mask=torch.tensor([[1]]),
        response_ids=torch.tensor([[6, 7, 8, 0]]), response_mask=torch.tensor([[1, 1, 1, 0]]),
        sampling_logp=torch.zeros(1, 4), group_ids=[0], completions=["x"], finished=torch.tensor([True]))


@pytest.mark.parametrize(("switches", "expected"), [
    ({"gae_lambda_policy": 0.95}, [0.46575, 0.385, 0.3, 0.0]),  # decoupled: the critic still gets λ = 1
    ({"length_adaptive_alpha": 2 / 3}, [0.225, 0.25, 0.3, 0.0]),  # l = 3 → λ = 1 − 1/(2/3·3) = 0.5
])
def test_decoupled_and_length_adaptive_gae_inside_the_loop(
        switches: dict, expected: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = validate_recipe({"model": {"tiny": TINY.model_dump()}, "data": {"task": {}},
                              "algorithm": {"name": "vc_ppo", "whiten_advantages": False, **switches}})
    critic = Critic(recipe, Parallel(Accelerator(cpu=True), recipe), lambda step: 1.0, None)
    monkeypatch.setattr(critic_module, "critic_values",
                        lambda *args: (torch.tensor([[0.5, 0.6, 0.7, 9.0]]), torch.zeros(1, 4, 1)))
    batch = gae_batch()
    critic.attach_advantages(batch, torch.tensor([1.0]), None, 0.0)
    torch.testing.assert_close(batch.advantages, torch.tensor([expected]), atol=1e-6, rtol=0)
    torch.testing.assert_close(batch.returns, torch.tensor([[1.0, 1.0, 1.0, 0.0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(batch.values, torch.tensor([[0.5, 0.6, 0.7, 0.0]]))


def test_kl_in_the_reward_is_shaped_per_token(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = validate_recipe({"model": {"tiny": TINY.model_dump()}, "data": {"task": {}},
                              "algorithm": {"name": "ppo", "whiten_advantages": False, "beta": 0.1}})
    critic = Critic(recipe, Parallel(Accelerator(cpu=True), recipe), lambda step: 1.0, None)
    monkeypatch.setattr(critic_module, "critic_values",
                        lambda *args: (torch.tensor([[0.5, 0.6, 0.7, 0.0]]), torch.zeros(1, 4, 1)))
    batch = gae_batch()
    critic.attach_advantages(batch, torch.tensor([1.0]), torch.tensor([[0.2, -0.1, 0.3, 0.0]]), 0.1)
    torch.testing.assert_close(batch.advantages[0, :3], torch.tensor([0.428175, 0.3665, 0.27]), atol=1e-6, rtol=0)


def test_critic_values_do_not_depend_on_the_rng_in_train_mode(tmp_path: Path) -> None:
    """transformers' token-classification head brings dropout 0.1; a critic must not keep it, or its
    training values differ from the values it gave GAE."""
    critic = load_critic(CriticConfig(), POLICY, CPU).train()
    ids, mask = batch_of([5, 6, 7], [8, 9], 0, 3)
    first, _ = critic_values(critic, ids, mask, 3, None)
    second, _ = critic_values(critic, ids, mask, 3, None)
    assert torch.equal(first, second)
    critic.save_pretrained(tmp_path)
    assert load_critic(CriticConfig(path=str(tmp_path)), POLICY, CPU).config.classifier_dropout == 0.0
