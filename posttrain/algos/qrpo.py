"""QRPO: pointwise regression onto the KL-regularised optimum with quantile rewards
(ALGORITHMS.md §8.4; Matrenok, Moalla, Gulcehre 2025, official ``qrpo_loss``).

A completion's reward is replaced by its quantile among rewards of reference-policy
samples for the same prompt; that quantile is Uniform(0, 1) under π_ref, so the partition
function of each transform has a closed form and the loss is a plain regression.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Transform = Literal["identity", "log", "normal-icdf", "scaled-normal-icdf"]
TRANSFORMS: tuple[str, ...] = ("identity", "log", "normal-icdf", "scaled-normal-icdf")


def quantile_reward(rewards: torch.Tensor, ref_rewards: torch.Tensor) -> torch.Tensor:
    """q = (1/n)·#{j: r_ref_j ≤ r} per row; ``rewards`` [B], ``ref_rewards`` [B, n]."""
    return (ref_rewards <= rewards.unsqueeze(-1)).float().mean(dim=-1)


def transformed_reward(
    quantiles: torch.Tensor,
    transform: Transform,
    beta: float,
    num_ref: int,
    scale: torch.Tensor | float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, log Z) for the transform; log Z is exact (the identity form keeps the log1p term)."""
    if beta <= 0:
        raise ValueError(f"QRPO needs beta > 0; got {beta}")
    q = quantiles.float()
    if transform == "identity":
        log_z = math.log(beta) + 1.0 / beta + math.log1p(-math.exp(-1.0 / beta))
        return q, torch.full_like(q, log_z)
    if transform == "log":
        return torch.log(q.clamp(min=1.0 / num_ref)), torch.full_like(q, math.log(beta / (1.0 + beta)))
    if transform in ("normal-icdf", "scaled-normal-icdf"):
        if num_ref < 2:
            raise ValueError(f"the {transform} transform needs at least 2 reference rewards per prompt")
        clamped = q.clamp(1.0 / num_ref, (num_ref - 1.0) / num_ref)
        icdf = math.sqrt(2.0) * torch.erfinv(2.0 * clamped - 1.0)
        s = torch.as_tensor(scale, dtype=torch.float32) if transform == "scaled-normal-icdf" else torch.tensor(1.0)
        return s * icdf, (s**2 / (2.0 * beta**2)).expand_as(q).clone()
    raise ValueError(f"unknown QRPO transform {transform!r}; expected one of {TRANSFORMS}")


def qrpo_loss(
    policy_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    reward: torch.Tensor,
    log_z: torch.Tensor,
    beta: float,
    loss_type: Literal["mse", "mae"] = "mse",
) -> torch.Tensor:
    """Per-completion ``(R − β·log Z − β·(logp − ref_logp))²`` (or its absolute value); logp are sums."""
    residual = reward - beta * log_z - beta * (policy_logp - ref_logp)
    if loss_type == "mse":
        return residual**2
    if loss_type == "mae":
        return residual.abs()
    raise ValueError(f"unknown QRPO loss type {loss_type!r}; expected 'mse' or 'mae'")
