import pytest
import torch

from posttrain.algos import aggregate_loss, loss_units

pytestmark = pytest.mark.unit

# ALGORITHMS.md §0.1: seq 1 has L=2 with ℓ=[1,1]; seq 2 has L=4 with ℓ=[0,0,0,0]; T=4.
LOSS = torch.tensor([[1.0, 1.0, 7.0, 7.0], [0.0, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("token-mean", 2 / 6), ("seq-mean-token-mean", 0.5), ("seq-mean-token-sum", 1.0),
     ("seq-mean-token-sum-norm", 0.25)],
)
def test_worked_example(mode: str, expected: float) -> None:
    assert aggregate_loss(LOSS, MASK, mode, norm_constant=4) == pytest.approx(expected, abs=1e-6)


def test_padding_values_never_leak() -> None:
    noisy = LOSS.clone()
    noisy[0, 2:] = float("nan")
    noisy = torch.where(MASK.bool(), noisy, torch.zeros_like(noisy))
    assert aggregate_loss(noisy, MASK, "token-mean") == pytest.approx(1 / 3, abs=1e-6)


def test_empty_sequence_excluded_from_sequence_denominators() -> None:
    loss = torch.tensor([[1.0, 1.0], [5.0, 5.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    assert aggregate_loss(loss, mask, "seq-mean-token-mean") == pytest.approx(1.0)
    assert aggregate_loss(loss, mask, "seq-mean-token-sum") == pytest.approx(2.0)
    assert aggregate_loss(loss, mask, "token-mean") == pytest.approx(1.0)


def test_all_empty_is_zero_not_nan() -> None:
    zeros = torch.zeros(2, 3)
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        assert aggregate_loss(torch.ones(2, 3), zeros, mode) == 0.0


def test_unknown_mode_names_the_choices() -> None:
    with pytest.raises(ValueError, match="token-mean"):
        aggregate_loss(LOSS, MASK, "mean")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
def test_slices_weighted_by_units_give_the_whole_batch_loss(mode: str) -> None:
    """Two processes each holding half the rows: Σ loss_half · units_half / units_total is the
    whole batch's loss (what a 2-process step reproduces)."""
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [0.5, 0.5, 0.5], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]])
    halves = [(loss[:2], mask[:2]), (loss[2:], mask[2:])]
    units = [float(loss_units(m, mode)) for _, m in halves]
    combined = sum(float(aggregate_loss(part, m, mode, 3)) * u / sum(units) for (part, m), u in zip(halves, units))
    assert combined == pytest.approx(float(aggregate_loss(loss, mask, mode, 3)), abs=1e-6)
    assert [float(loss_units(mask, mode))] == [{"token-mean": 6.0, "seq-mean-token-sum-norm": 4.0}.get(mode, 3.0)]
