"""Critic losses: the clipped scalar value loss (§1.5) and the categorical HL-Gauss /
two-hot alternative (§10), with the helpers that turn logits into a scalar value."""

from __future__ import annotations

import math
from typing import Literal

import torch

from posttrain.algos.aggregation import LossAggMode, aggregate_loss

CategoricalTarget = Literal["hl_gauss", "two_hot"]


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None,
    mode: LossAggMode = "token-mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``0.5·agg(max((v − R)², (v_clip − R)²))``; ``clip=None`` disables clipping.

    Returns ``(loss, clip_fraction)`` — the fraction of valid tokens where the clipped
    term was the larger one.
    """
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * aggregate_loss(unclipped, mask, mode), torch.zeros((), device=values.device)
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * aggregate_loss(torch.maximum(unclipped, clipped), mask, mode)
    fraction = aggregate_loss((clipped > unclipped).float(), mask, "token-mean")
    return loss, fraction


def bin_centres(v_min: float, v_max: float, num_bins: int) -> torch.Tensor:
    """Centres of ``num_bins`` equal bins over ``[v_min, v_max]`` (the HL-Gauss support)."""
    width = (v_max - v_min) / num_bins
    return v_min + width * (torch.arange(num_bins, dtype=torch.float32) + 0.5)


def hl_gauss_targets(y: torch.Tensor, v_min: float, v_max: float, num_bins: int,
                     sigma_ratio: float = 0.75) -> torch.Tensor:
    """Gaussian mass of N(y, σ²) in each bin, renormalised to the support; σ = ratio × bin width."""
    edges = torch.linspace(v_min, v_max, num_bins + 1, dtype=torch.float32, device=y.device)
    sigma = sigma_ratio * (v_max - v_min) / num_bins
    y = y.to(torch.float32).clamp(v_min, v_max).unsqueeze(-1)
    cdf = 0.5 * (1.0 + torch.erf((edges - y) / (sigma * math.sqrt(2.0))))
    mass = cdf[..., 1:] - cdf[..., :-1]
    return mass / (cdf[..., -1:] - cdf[..., :1])


def two_hot_targets(y: torch.Tensor, v_min: float, v_max: float, num_bins: int) -> torch.Tensor:
    """Split y between its two neighbouring atoms of ``linspace(v_min, v_max, num_bins)``."""
    atoms = torch.linspace(v_min, v_max, num_bins, dtype=torch.float32, device=y.device)
    y = y.to(torch.float32).clamp(v_min, v_max)
    upper = torch.searchsorted(atoms, y.contiguous(), right=False).clamp(1, num_bins - 1)
    lower = upper - 1
    low_atom, high_atom = atoms[lower], atoms[upper]
    weight_low = (high_atom - y) / (high_atom - low_atom)
    targets = torch.zeros(*y.shape, num_bins, device=y.device)
    targets.scatter_(-1, lower.unsqueeze(-1), weight_low.unsqueeze(-1))
    targets.scatter_add_(-1, upper.unsqueeze(-1), (1.0 - weight_low).unsqueeze(-1))
    return targets


def categorical_support(kind: CategoricalTarget, v_min: float, v_max: float, num_bins: int) -> torch.Tensor:
    """Values the bins stand for: bin centres for HL-Gauss, atoms for two-hot."""
    if kind == "hl_gauss":
        return bin_centres(v_min, v_max, num_bins)
    return torch.linspace(v_min, v_max, num_bins, dtype=torch.float32)


def categorical_value(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Expected value ``Σ softmax(z)_i · c_i`` of categorical value logits ``[..., m]``."""
    return (logits.float().softmax(dim=-1) * support.to(logits.device)).sum(dim=-1)


def categorical_value_loss(
    logits: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    kind: CategoricalTarget,
    v_min: float,
    v_max: float,
    mode: LossAggMode = "token-mean",
) -> torch.Tensor:
    """Cross-entropy of the value logits against the HL-Gauss or two-hot target of R."""
    num_bins = logits.shape[-1]
    if kind == "hl_gauss":
        targets = hl_gauss_targets(returns, v_min, v_max, num_bins)
    elif kind == "two_hot":
        targets = two_hot_targets(returns, v_min, v_max, num_bins)
    else:
        raise ValueError(f"unknown categorical target {kind!r}; expected 'hl_gauss' or 'two_hot'")
    cross_entropy = -(targets * logits.float().log_softmax(dim=-1)).sum(dim=-1)
    return aggregate_loss(cross_entropy, mask, mode)
