"""GAE, decoupled and length-adaptive λ, whitening and KL shaping (ALGORITHMS.md §1.2, §1.4, §2.2, §3.1)."""

import pytest
import torch

from posttrain.algos import (
    explained_variance,
    gae,
    kl_shaped_rewards,
    length_adaptive_lambda,
    masked_whiten,
    outcome_token_rewards,
)

pytestmark = pytest.mark.unit

R = torch.tensor([[0.0, 0.0, 1.0]])
V = torch.tensor([[0.5, 0.6, 0.7]])
M = torch.ones(1, 3)


@pytest.mark.parametrize(
    ("gamma", "lam", "advantages", "returns"),
    [
        (1.0, 0.95, [0.46575, 0.385, 0.3], [0.96575, 0.985, 1.0]),
        (1.0, 1.0, [0.5, 0.4, 0.3], [1.0, 1.0, 1.0]),
        (0.99, 0.95, [0.446828575, 0.37515, 0.3], None),
        (1.0, 0.5, [0.225, 0.25, 0.3], None),
    ],
)
def test_three_token_trajectory(gamma: float, lam: float, advantages: list[float], returns: list[float] | None) -> None:
    adv, ret = gae(R, V, M, gamma, lam)
    assert adv[0].tolist() == pytest.approx(advantages, abs=1e-6)
    if returns is not None:
        assert ret[0].tolist() == pytest.approx(returns, abs=1e-6)


def test_kl_shaped_rewards() -> None:
    shaped = kl_shaped_rewards(R, torch.tensor([[0.2, -0.1, 0.3]]), 0.1, M)
    assert shaped[0].tolist() == pytest.approx([-0.02, 0.01, 0.97], abs=1e-6)
    adv, _ = gae(shaped, V, M, 1.0, 0.95)
    assert adv[0].tolist() == pytest.approx([0.428175, 0.3665, 0.27], abs=1e-6)


def test_padding_does_not_change_valid_advantages() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0, -4.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]])
    adv, ret = gae(rewards, values, mask, 1.0, 0.95)
    assert adv[0, :3].tolist() == pytest.approx([0.46575, 0.385, 0.3], abs=1e-6)
    assert adv[0, 3:].tolist() == [0.0, 0.0] and ret[0, 3:].tolist() == [0.0, 0.0]


def test_masked_tokens_inside_a_sequence_are_transparent() -> None:
    """An observation token in the middle neither consumes a TD error nor breaks the chain."""
    rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 123.0, 0.6, 0.7]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    adv, _ = gae(rewards, values, mask, 1.0, 0.95)
    assert [adv[0, 0].item(), adv[0, 2].item(), adv[0, 3].item()] == pytest.approx([0.46575, 0.385, 0.3], abs=1e-6)


def test_decoupled_lambda_critic_and_actor() -> None:
    _, critic_targets = gae(R, V, M, 1.0, 1.0)
    actor, _ = gae(R, V, M, 1.0, 0.95)
    assert critic_targets[0].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    assert actor[0].tolist() == pytest.approx([0.46575, 0.385, 0.3], abs=1e-6)


def test_per_row_lambda_matches_separate_runs() -> None:
    rewards, values, mask = R.repeat(2, 1), V.repeat(2, 1), M.repeat(2, 1)
    adv, _ = gae(rewards, values, mask, 1.0, torch.tensor([0.95, 0.5]))
    assert adv[0].tolist() == pytest.approx([0.46575, 0.385, 0.3], abs=1e-6)
    assert adv[1].tolist() == pytest.approx([0.225, 0.25, 0.3], abs=1e-6)


@pytest.mark.parametrize(
    ("length", "expected"),
    [(3, 0.0), (19, 0.0), (20, 0.0), (40, 0.5), (200, 0.9), (1000, 0.98), (2000, 0.99), (0, 0.0)],
)
def test_length_adaptive_lambda(length: int, expected: float) -> None:
    assert length_adaptive_lambda(torch.tensor([length]), 0.05).item() == pytest.approx(expected, abs=1e-6)


def test_whitening_values() -> None:
    whitened = masked_whiten(torch.tensor([[0.46575, 0.385, 0.3]]), M)
    assert whitened[0].tolist() == pytest.approx([0.99134, 0.01709, -1.00844], abs=1e-5)


def test_whitening_ignores_padding_and_skips_single_token() -> None:
    values = torch.tensor([[0.46575, 0.385, 0.3, 100.0]])
    whitened = masked_whiten(values, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    assert whitened[0, :3].tolist() == pytest.approx([0.99134, 0.01709, -1.00844], abs=1e-5)
    assert whitened[0, 3].item() == 0.0
    single = masked_whiten(torch.tensor([[2.0, 5.0]]), torch.tensor([[1.0, 0.0]]))
    assert single.tolist() == [[2.0, 0.0]] and torch.isfinite(single).all()


def test_outcome_rewards_sit_on_the_last_valid_token_and_skip_empty_rows() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    rewards = outcome_token_rewards(torch.tensor([1.0, 5.0, 2.0]), mask)
    assert rewards.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.0]]


def test_explained_variance() -> None:
    returns = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert explained_variance(returns, returns, torch.ones(1, 4)).item() == pytest.approx(1.0)
    assert explained_variance(returns, torch.full((1, 4), 0.5), torch.ones(1, 4)).item() == pytest.approx(0.0)
    assert explained_variance(torch.ones(1, 4), torch.zeros(1, 4), torch.ones(1, 4)).item() == 0.0
