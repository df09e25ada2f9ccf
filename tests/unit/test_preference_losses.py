"""DPO, cDPO, IPO, Pre-DPO (§8.1–§8.3) and QRPO (§8.4) against the worked numbers."""

import math

import pytest
import torch

from posttrain.algos import (
    dpo_loss,
    dpo_pair_weight,
    ipo_loss,
    qrpo_loss,
    quantile_reward,
    simpo_loss,
    transformed_reward,
)

pytestmark = pytest.mark.unit


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_dpo_example_weight_and_rewards() -> None:
    out = dpo_loss(t(-10.0), t(-12.0), t(-11.0), t(-11.0), beta=0.1)
    assert out.losses.item() == pytest.approx(0.5981389, abs=1e-6)
    assert (out.chosen_rewards.item(), out.rejected_rewards.item()) == pytest.approx((0.1, -0.1), abs=1e-6)
    assert out.accuracy.item() == 1.0
    assert dpo_pair_weight(t(-10.0), t(-12.0), t(-11.0), t(-11.0), 0.1).item() == pytest.approx(0.4501660, abs=1e-6)


def test_dpo_at_initialisation_is_log_two() -> None:
    same = t(-3.0, -7.5, -20.0)
    out = dpo_loss(same, same - 1, same, same - 1, beta=0.1)
    assert out.losses.tolist() == pytest.approx([math.log(2)] * 3, abs=1e-6)


def test_conservative_dpo() -> None:
    out = dpo_loss(t(-10.0), t(-12.0), t(-11.0), t(-11.0), beta=0.1, label_smoothing=0.1)
    assert out.losses.item() == pytest.approx(0.6181389, abs=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(t(-1.0), t(-1.0), t(-1.0), t(-1.0), label_smoothing=0.5)


def test_dpo_stays_finite_for_huge_margins() -> None:
    out = dpo_loss(t(0.0), t(-1e4), t(0.0), t(0.0), beta=0.1)
    reverse = dpo_loss(t(-1e4), t(0.0), t(0.0), t(0.0), beta=0.1)
    assert torch.isfinite(out.losses).all() and reverse.losses.item() == pytest.approx(1000.0, rel=1e-6)


def test_ipo_examples() -> None:
    plain = ipo_loss(t(-10.0), t(-12.0), t(-11.0), t(-11.0), tau=0.1, length_normalize=False)
    assert plain.losses.item() == pytest.approx(9.0, abs=1e-6)
    normalised = ipo_loss(t(1.0), t(-1.0), t(0.0), t(0.0), tau=0.1, chosen_lengths=t(4), rejected_lengths=t(5))
    assert normalised.losses.item() == pytest.approx(20.7025, abs=1e-5)
    with pytest.raises(ValueError, match="chosen_lengths"):
        ipo_loss(t(1.0), t(-1.0), t(0.0), t(0.0))


def test_pre_dpo_guide_reweights_pairs() -> None:
    guided = dpo_loss(t(-20.0), t(-22.0), t(-15.0), t(-25.0), beta=0.05)
    assert guided.losses.item() == pytest.approx(0.9130153, abs=1e-6)
    assert dpo_pair_weight(t(-20.0), t(-22.0), t(-15.0), t(-25.0), 0.05).item() == pytest.approx(0.5986877, abs=1e-6)
    reversed_by_guide = dpo_loss(t(-20.0), t(-22.0), t(-24.0), t(-20.0), beta=0.05)
    assert reversed_by_guide.losses.item() == pytest.approx(0.5543552, abs=1e-6)
    assert dpo_pair_weight(t(-20.0), t(-22.0), t(-24.0), t(-20.0), 0.05).item() == pytest.approx(0.4255575, abs=1e-6)


def test_simpo_length_normalised_margin() -> None:
    # rewards -10/5 = -2 and -12/4 = -3: β·1 − γ = 1.5 → log(1 + e^{-1.5})
    out = simpo_loss(t(-10.0), t(-12.0), t(5.0), t(4.0), beta=2.0, gamma=0.5)
    assert out.losses.item() == pytest.approx(0.2014133, abs=1e-6)
    assert (out.chosen_rewards.item(), out.rejected_rewards.item()) == pytest.approx((-4.0, -6.0))
    # an empty completion counts as one token rather than dividing by zero
    assert torch.isfinite(simpo_loss(t(0.0), t(-1.0), t(0.0), t(1.0)).losses).all()


def test_qrpo_quantile_with_ties() -> None:
    q = quantile_reward(t(0.6, 0.1), torch.tensor([[0.2, 0.5, 0.6, 0.9], [0.2, 0.5, 0.6, 0.9]]))
    assert q.tolist() == pytest.approx([0.75, 0.0])


def test_qrpo_identity_transform() -> None:
    reward, log_z = transformed_reward(t(0.75), "identity", beta=0.1, num_ref=4)
    assert log_z.item() == pytest.approx(7.6973695, abs=1e-6)
    target = reward - 0.1 * log_z
    assert target.item() == pytest.approx(0.75 - 0.76973695, abs=1e-6)
    assert qrpo_loss(t(-5.0), t(-5.0), reward, log_z, 0.1).item() == pytest.approx(target.item() ** 2, abs=1e-9)
    optimum = target.item() / 0.1
    assert qrpo_loss(t(optimum), t(0.0), reward, log_z, 0.1).item() == pytest.approx(0.0, abs=1e-10)
    _, large_beta = transformed_reward(t(0.75), "identity", beta=5.0, num_ref=4)
    assert large_beta.item() == pytest.approx(0.101666, abs=1e-6)
    assert math.exp(log_z.item()) == pytest.approx(0.1 * (math.exp(10) - 1), rel=1e-6)  # Z = β(e^{1/β} − 1)


def test_qrpo_log_transform() -> None:
    reward, log_z = transformed_reward(t(0.75, 0.0), "log", beta=0.1, num_ref=4)
    assert reward.tolist() == pytest.approx([-0.2876821, -1.3862944], abs=1e-6)  # q = 0 clamps to 1/4
    assert log_z[0].item() == pytest.approx(-2.3978953, abs=1e-6)
    loss = qrpo_loss(t(0.0), t(0.0), reward[:1], log_z[:1], 0.1)
    assert loss.item() == pytest.approx(0.0022937, abs=1e-6)
    assert qrpo_loss(t(0.0), t(0.0), reward[:1], log_z[:1], 0.1, "mae").item() == pytest.approx(0.0478925, abs=1e-6)


def test_qrpo_normal_icdf_transforms() -> None:
    reward, log_z = transformed_reward(t(0.5, 1.0), "normal-icdf", beta=0.5, num_ref=4)
    assert reward[0].item() == pytest.approx(0.0, abs=1e-6)
    assert reward[1].item() == pytest.approx(0.6744898, abs=1e-5)  # clamped to 3/4
    assert log_z.tolist() == pytest.approx([2.0, 2.0])
    scaled, scaled_z = transformed_reward(t(1.0), "scaled-normal-icdf", beta=0.5, num_ref=4, scale=2.0)
    assert scaled.item() == pytest.approx(2 * 0.6744898, abs=1e-5) and scaled_z.item() == pytest.approx(8.0)
    with pytest.raises(ValueError, match="unknown QRPO transform"):
        transformed_reward(t(0.5), "sqrt", beta=0.5, num_ref=4)  # type: ignore[arg-type]


def test_partition_sanity_integrals() -> None:
    grid = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    assert torch.trapezoid(torch.exp(grid / 0.1), grid).item() == pytest.approx(2202.5466, rel=1e-6)
    assert torch.trapezoid(grid**10, grid).item() == pytest.approx(1 / 11, rel=1e-6)
