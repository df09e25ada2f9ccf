"""Rollout/trainer log-prob mismatch and truncated importance weights, on hand-computed numbers."""

import math

import pytest
import torch

from posttrain.algos import logprob_mismatch, truncated_is_weights

pytestmark = pytest.mark.unit


def test_mismatch_statistics_over_valid_tokens_only() -> None:
    old = torch.tensor([[-1.0, -2.0, -9.0]])
    rollout = torch.tensor([[-1.5, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    out = logprob_mismatch(old, rollout, mask)
    # differences 0.5 and -1.0; k3 = e^d − 1 − d
    expected_kl = ((math.exp(0.5) - 1.5) + (math.exp(-1.0) - 1 + 1.0)) / 2
    assert (out.mean_abs, out.max_abs) == pytest.approx((0.75, 1.0))
    assert out.kl == pytest.approx(expected_kl)
    assert logprob_mismatch(old, old, mask).kl == 0.0


def test_truncated_weights_cap_the_ratio() -> None:
    old = torch.tensor([-1.0, -1.0, -1.0], requires_grad=True)
    rollout = torch.tensor([-1.0, -1.0 - math.log(2.0), -1.0 + math.log(4.0)])
    weights = truncated_is_weights(old, rollout, cap=1.5)
    assert weights.tolist() == pytest.approx([1.0, 1.5, 0.25])
    assert not weights.requires_grad
    with pytest.raises(ValueError, match="cap"):
        truncated_is_weights(old, rollout, cap=0.0)
