import pytest
import torch

from posttrain.algos import (
    Advantages,
    broadcast_to_tokens,
    clipped_surrogate,
    grpo_advantages,
    uniform_reward_group_fraction,
    zero_advantage_fraction,
)

pytestmark = pytest.mark.unit

G4 = [0, 0, 0, 0]


def test_unbiased_std_example() -> None:
    adv = grpo_advantages(torch.tensor([1.0, 0, 0, 1]), G4)
    assert adv.tolist() == pytest.approx([0.8660239, -0.8660239, -0.8660239, 0.8660239], abs=1e-6)


def test_one_correct_of_four() -> None:
    adv = grpo_advantages(torch.tensor([1.0, 0, 0, 0]), G4)
    assert adv.tolist() == pytest.approx([1.499997, -0.499999, -0.499999, -0.499999], abs=1e-6)


def test_dr_grpo_does_not_scale() -> None:
    adv = grpo_advantages(torch.tensor([1.0, 0, 0, 1]), G4, scale_by_std=False)
    assert adv.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5], abs=1e-6)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_degenerate_groups_are_exact_zeros(value: float) -> None:
    adv = grpo_advantages(torch.full((4,), value), G4)
    assert torch.equal(adv, torch.zeros(4))


def test_groups_are_independent() -> None:
    scores = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1])
    adv = grpo_advantages(scores, [7, 7, 7, 7, 3, 3, 3, 3])
    assert adv[:4].tolist() == pytest.approx([0.8660239, -0.8660239, -0.8660239, 0.8660239], abs=1e-6)
    assert torch.equal(adv[4:], torch.zeros(4))
    assert zero_advantage_fraction(Advantages(adv, torch.ones(8)).weighted, [7, 7, 7, 7, 3, 3, 3, 3]) == 0.5
    assert uniform_reward_group_fraction(scores, [7, 7, 7, 7, 3, 3, 3, 3]) == 0.5


def test_singleton_groups_raise_unless_allowed() -> None:
    with pytest.raises(ValueError, match="single sample"):
        grpo_advantages(torch.tensor([1.0, 0.0]), [0, 1])
    assert grpo_advantages(torch.tensor([1.0, 0.0]), [0, 1], allow_singleton_groups=True).tolist() == [1.0, 0.0]


def test_broadcast_respects_mask() -> None:
    tokens = broadcast_to_tokens(torch.tensor([2.0, -1.0]), torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert tokens.tolist() == [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    ("ratio", "advantage", "high", "dual", "expected"),
    [
        (1.3, 1.0, 0.2, None, -1.2),
        (0.7, -1.0, 0.2, None, 0.8),
        (1.3, 1.0, 0.28, None, -1.28),
        (5.0, -1.0, 0.2, 3.0, 3.0),
        (5.0, -1.0, 0.2, None, 5.0),
        (0.9, 1.0, 0.2, None, -0.9),
    ],
)
def test_clipped_surrogate_worked_examples(ratio, advantage, high, dual, expected) -> None:
    old = torch.zeros(1, 1)
    logp = torch.log(torch.tensor([[ratio]]))
    out = clipped_surrogate(logp, old, torch.tensor([[advantage]]), torch.ones(1, 1), 0.2, high, dual)
    assert out.per_token_loss.item() == pytest.approx(expected, abs=1e-6)


def test_zero_advantage_gives_zero_loss_and_gradient() -> None:
    logp = torch.tensor([[-0.3, -2.0]], requires_grad=True)
    out = clipped_surrogate(logp, torch.tensor([[-0.5, -1.0]]), torch.zeros(1, 2), torch.ones(1, 2))
    out.per_token_loss.sum().backward()
    assert out.per_token_loss.abs().sum() == 0 and logp.grad.abs().sum() == 0


def test_clip_fraction_and_dual_fraction() -> None:
    logp = torch.log(torch.tensor([[1.3, 1.0, 5.0, 1.0]]))
    adv = torch.tensor([[1.0, 1.0, -1.0, 0.5]])
    out = clipped_surrogate(logp, torch.zeros(1, 4), adv, torch.tensor([[1, 1, 1, 0]]), dual_clip=3.0)
    # token 0 is clipped (l2 > l1); token 2 (ratio 5, A<0) takes the unclipped branch, then the dual clip
    assert out.clip_fraction.item() == pytest.approx(1 / 3)
    assert out.dual_clip_fraction.item() == pytest.approx(1 / 3)


def test_grpo_loss_from_worked_numbers() -> None:
    """Rewards [1,0,0,1] at ratio 1: per-token loss is −A, averaged per sequence then over sequences."""
    from posttrain.algos import aggregate_loss

    adv = broadcast_to_tokens(grpo_advantages(torch.tensor([1.0, 0, 0, 1]), G4),
                              mask := torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]]))
    logp = torch.zeros(4, 3, requires_grad=True)
    out = clipped_surrogate(logp, logp.detach(), adv, mask)
    loss = aggregate_loss(out.per_token_loss, mask, "seq-mean-token-mean")
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    # d loss / d logp[b,t] = −A_b / (L_b · B)
    assert logp.grad[1, 0].item() == pytest.approx(0.8660239 / (1 * 4), abs=1e-6)
    assert logp.grad[0, 0].item() == pytest.approx(-0.8660239 / (3 * 4), abs=1e-6)
    assert logp.grad[1, 1].item() == 0.0
