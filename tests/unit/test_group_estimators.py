"""MAPO (§5), BNPO (§6), LENS (§7), the positive-example NLL (§3.2), the overlong penalty,
and the estimator registry the online loop calls."""

import math

import pytest
import torch

from posttrain.algos import (
    ESTIMATORS,
    AdvantageOptions,
    GroupRollout,
    beta_density,
    bnpo_advantages,
    bnpo_decomposed_advantages,
    compute_advantages,
    entropy_bonus,
    fit_normalisation,
    grpo_advantages,
    lens_advantages,
    mapo_advantages,
    normalised_confidence,
    overlong_penalty,
    positive_example_nll,
    zero_advantage_fraction,
)

pytestmark = pytest.mark.unit

G4 = [0, 0, 0, 0]


# ---------------------------------------------------------------- MAPO
@pytest.mark.parametrize(
    ("rewards", "expected"),
    [
        ([1, 1, 1, 0], [0.4583325, 0.4583325, 0.4583325, -1.3749974]),
        ([1, 0, 0, 0], [1.8749948, -0.6249983, -0.6249983, -0.6249983]),
        ([1, 1, 0, 0], [0.8660239, 0.8660239, -0.8660239, -0.8660239]),
    ],
)
def test_mapo_worked_examples(rewards: list[int], expected: list[float]) -> None:
    adv = mapo_advantages(torch.tensor(rewards, dtype=torch.float32), G4)
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)


def test_mapo_seven_of_eight_and_grpo_at_even_split() -> None:
    adv = mapo_advantages(torch.tensor([1.0] * 7 + [0.0]), [0] * 8)
    assert adv[0].item() == pytest.approx(0.2350362, abs=1e-6)
    assert adv[7].item() == pytest.approx(-1.6452536, abs=1e-6)
    even = torch.tensor([1.0, 0, 1, 0])
    assert torch.allclose(mapo_advantages(even, G4), grpo_advantages(even, G4))


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_mapo_degenerate_groups_are_zero(value: float) -> None:
    adv = mapo_advantages(torch.full((4,), value), G4)
    assert torch.equal(adv, torch.zeros(4))


# ---------------------------------------------------------------- BNPO
def _bnpo_batch(means: list[float], size: int = 4) -> tuple[torch.Tensor, list[int]]:
    scores, ids = [], []
    for g, p in enumerate(means):
        correct = round(p * size)
        scores += [1.0] * correct + [0.0] * (size - correct)
        ids += [g] * size
    return torch.tensor(scores), ids


def test_bnpo_symmetric_batch() -> None:
    assert fit_normalisation(torch.tensor([0.25, 0.5, 0.75, 0.5], dtype=torch.float64)) == pytest.approx(
        (1.8333333, 1.8333333), abs=1e-6)
    density = beta_density(torch.tensor([0.25, 0.5]), 1.8333333333333333, 1.8333333333333333)
    assert density.tolist() == pytest.approx([1.1237997, 1.4282510], abs=1e-6)
    scores, ids = _bnpo_batch([0.25, 0.5, 0.75, 0.5])
    adv = bnpo_advantages(scores, ids)
    assert adv[0].item() == pytest.approx(0.6673787, abs=1e-6)   # p = 0.25, correct
    assert adv[1].item() == pytest.approx(-0.2224596, abs=1e-6)  # p = 0.25, wrong
    assert adv[4].item() == pytest.approx(0.3500785, abs=1e-6)   # p = 0.5
    assert adv[8].item() == pytest.approx(0.2224596, abs=1e-6)   # p = 0.75, correct
    assert adv[11].item() == pytest.approx(-0.6673787, abs=1e-6)


def test_bnpo_asymmetric_batch() -> None:
    alpha, beta = fit_normalisation(torch.tensor([0.125, 0.25, 0.25, 0.5], dtype=torch.float64))
    assert (alpha, beta) == pytest.approx((1.6722862, 2.7180647), abs=1e-6)
    assert beta_density(torch.tensor([0.125]), alpha, beta).item() == pytest.approx(1.3875717, abs=1e-6)
    scores, ids = _bnpo_batch([0.125, 0.25, 0.25, 0.5], size=8)
    adv = bnpo_advantages(scores, ids)
    assert adv[0].item() == pytest.approx(0.6305981, abs=1e-6)
    assert adv[1].item() == pytest.approx(-0.0900854, abs=1e-6)


def test_bnpo_reductions() -> None:
    p = torch.tensor([0.25])
    assert beta_density(p, 1.0, 1.0).item() == pytest.approx(1.0)
    assert beta_density(p, 1.5, 1.5).item() == pytest.approx(1.1026578, abs=1e-6)
    assert beta_density(p, 1.5, 1.5).item() == pytest.approx(8 / math.pi * math.sqrt(0.1875), abs=1e-9)


def test_bnpo_degenerate_groups_and_constant_batches_stay_finite() -> None:
    scores, ids = _bnpo_batch([0.0, 1.0, 0.5, 0.25])
    adv = bnpo_advantages(scores, ids)
    assert torch.isfinite(adv).all()
    assert torch.equal(adv[:8], torch.zeros(8))
    same, ids = _bnpo_batch([0.5, 0.5])  # v = 0: α = β = 1, a plain mean baseline
    assert bnpo_advantages(same, ids).tolist() == pytest.approx([0.5, 0.5, -0.5, -0.5] * 2)


def test_bnpo_rejects_rewards_outside_the_range() -> None:
    with pytest.raises(ValueError, match="reward_min"):
        bnpo_advantages(torch.tensor([2.0, 0.0, 3.0, 2.0]), [0, 0, 1, 1])


def test_bnpo_decomposition_averages_component_advantages() -> None:
    accuracy, ids = _bnpo_batch([0.25, 0.5, 0.75, 0.5])
    fmt, _ = _bnpo_batch([1.0, 0.5, 0.5, 0.25])
    combined = bnpo_decomposed_advantages({"accuracy": accuracy, "format": fmt, "kl": torch.ones(16)}, ids,
                                          ["accuracy", "format"])
    expected = (bnpo_advantages(accuracy, ids) + bnpo_advantages(fmt, ids)) / 2
    assert torch.allclose(combined, expected)
    with pytest.raises(ValueError, match="style"):
        bnpo_decomposed_advantages({"accuracy": accuracy}, ids, ["style"])


# ---------------------------------------------------------------- LENS
def _logp(confidence: list[float]) -> torch.Tensor:
    return torch.tensor(confidence).log().unsqueeze(-1)


def test_lens_negative_group() -> None:
    result = lens_advantages(torch.zeros(4), G4, _logp([0.5, 0.25, 0.8, 0.4]), torch.ones(4, 1))
    assert result.calibrated_rewards.tolist() == pytest.approx([-0.113636, -0.046296, -0.25, -0.083333], abs=1e-6)
    assert result.advantages.tolist() == pytest.approx([0.009680, 0.077020, -0.126684, 0.039983], abs=1e-6)
    assert result.weights.tolist() == [0.25] * 4


def test_lens_mixed_group() -> None:
    result = lens_advantages(torch.tensor([1.0, 0, 0, 1]), G4, _logp([0.6, 0.5, 0.3, 0.4]), torch.ones(4, 1))
    assert result.calibrated_rewards.tolist() == pytest.approx([1.0, -0.178571, -0.083333, 1.0], abs=1e-6)
    assert result.advantages.tolist() == pytest.approx([0.864493, -0.937292, -0.791693, 0.864493], abs=1e-6)
    assert result.weights.tolist() == [1.0] * 4


def test_lens_confidence_is_length_normalised() -> None:
    logp = torch.full((1, 12), -6.931472 / 10)
    mask = torch.tensor([[1.0] * 10 + [0.0, 0.0]])
    assert normalised_confidence(logp, mask).item() == pytest.approx(0.5, abs=1e-6)


def test_lens_all_correct_is_zero_and_empty_responses_are_excluded() -> None:
    result = lens_advantages(torch.ones(4), G4, _logp([0.5, 0.5, 0.5, 0.5]), torch.ones(4, 1))
    assert torch.equal(result.advantages, torch.zeros(4))
    mask = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    partial = lens_advantages(torch.zeros(4), G4, _logp([0.5, 0.25, 0.8, 0.4]), mask)
    assert partial.weights[3].item() == 0.0 and partial.advantages[3].item() == 0.0
    assert torch.isfinite(partial.advantages).all() and (partial.advantages[:3] != 0).all()


def test_lens_rejects_non_binary_rewards() -> None:
    with pytest.raises(ValueError, match="binary"):
        lens_advantages(torch.tensor([0.5, 0, 0, 1]), G4, _logp([0.5] * 4), torch.ones(4, 1))


# ---------------------------------------------------------------- extra terms
def test_positive_example_nll() -> None:
    logp = torch.tensor([[-0.5, -1.0, 0.0], [-0.2, -0.3, -0.5], [-9.0, -9.0, -9.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    nll = positive_example_nll(logp, mask, torch.tensor([True, True, False]))
    assert nll.item() == pytest.approx(0.5, abs=1e-6)
    assert (0.1 * nll).item() == pytest.approx(0.05, abs=1e-6)
    none = positive_example_nll(logp, mask, torch.tensor([False, False, False]))
    assert none.item() == 0.0
    none.backward()
    assert torch.equal(logp.grad, torch.zeros_like(logp))


def test_overlong_penalty_ramps_inside_the_buffer() -> None:
    lengths = torch.tensor([10, 16, 18, 20, 25])
    assert overlong_penalty(lengths, max_length=20, buffer=4).tolist() == pytest.approx([0, 0, -0.5, -1, -1])
    with pytest.raises(ValueError, match="buffer"):
        overlong_penalty(lengths, max_length=20, buffer=0)


def test_entropy_bonus_uses_the_aggregation() -> None:
    entropy = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert entropy_bonus(entropy, mask, 0.1, "token-mean").item() == pytest.approx(0.1 * 2 / 6)


# ---------------------------------------------------------------- the registry the loop calls
def test_every_estimator_runs_through_the_one_signature() -> None:
    rollout = GroupRollout(torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]), [0, 0, 0, 0, 1, 1, 1, 1],
                           -torch.linspace(0.1, 1.5, 24).reshape(8, 3), torch.ones(8, 3), {})
    zero_fractions = {}
    for name in ESTIMATORS:
        adv = compute_advantages(name, rollout, AdvantageOptions())
        assert adv.values.shape == (8,) and torch.isfinite(adv.weighted).all()
        zero_fractions[name] = zero_advantage_fraction(adv.weighted, rollout.group_ids)
    assert zero_fractions == {"grpo": 0.5, "mapo": 0.5, "bnpo": 0.5, "lens": 0.0}  # LENS: the all-wrong group learns
    with pytest.raises(ValueError, match="known: bnpo, grpo, lens, mapo"):
        compute_advantages("ppo2", rollout, AdvantageOptions())
