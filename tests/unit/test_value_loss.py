"""Clipped value loss (§1.5) and the categorical critic targets (§10)."""

import math

import pytest
import torch

from posttrain.algos import (
    categorical_support,
    categorical_value,
    categorical_value_loss,
    clipped_value_loss,
    hl_gauss_targets,
    two_hot_targets,
)

pytestmark = pytest.mark.unit


def test_clipped_value_loss_example() -> None:
    loss, fraction = clipped_value_loss(torch.tensor([[0.9]]), torch.tensor([[0.5]]), torch.tensor([[1.0]]),
                                        torch.ones(1, 1), clip=0.2)
    assert loss.item() == pytest.approx(0.045, abs=1e-6)
    assert fraction.item() == 1.0
    unclipped, _ = clipped_value_loss(torch.tensor([[0.9]]), torch.tensor([[0.5]]), torch.tensor([[1.0]]),
                                      torch.ones(1, 1), clip=None)
    assert unclipped.item() == pytest.approx(0.005, abs=1e-6)


def test_hl_gauss_example() -> None:
    targets = hl_gauss_targets(torch.tensor(0.6), 0.0, 1.0, 4)
    assert targets.tolist() == pytest.approx([0.0308150, 0.2705637, 0.4998078, 0.1988135], abs=1e-6)
    assert targets.sum().item() == pytest.approx(1.0, abs=1e-6)
    support = categorical_support("hl_gauss", 0.0, 1.0, 4)
    assert (targets * support).sum().item() == pytest.approx(0.5916550, abs=1e-6)


def test_two_hot_example_and_exact_expectation() -> None:
    targets = two_hot_targets(torch.tensor([0.6, 0.0, 1.0, 5.0]), 0.0, 1.0, 4)
    assert targets[0].tolist() == pytest.approx([0.0, 0.2, 0.8, 0.0], abs=1e-6)
    support = categorical_support("two_hot", 0.0, 1.0, 4)
    assert (targets * support).sum(-1).tolist() == pytest.approx([0.6, 0.0, 1.0, 1.0], abs=1e-6)  # 5.0 is clipped


def test_cross_entropy_against_uniform_logits() -> None:
    logits = torch.zeros(1, 2, 4)
    loss = categorical_value_loss(logits, torch.tensor([[0.6, 0.1]]), torch.ones(1, 2), "hl_gauss", 0.0, 1.0)
    assert loss.item() == pytest.approx(math.log(4), abs=1e-6)
    assert categorical_value(logits, categorical_support("hl_gauss", 0.0, 1.0, 4))[0].tolist() == pytest.approx(
        [0.5, 0.5], abs=1e-6)


def test_unknown_target_names_the_choices() -> None:
    with pytest.raises(ValueError, match="hl_gauss"):
        categorical_value_loss(torch.zeros(1, 1, 4), torch.zeros(1, 1), torch.ones(1, 1), "gauss", 0, 1)  # type: ignore[arg-type]
