"""Token-level clipped surrogate with clip-higher and dual clip (ALGORITHMS.md §1.3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posttrain.algos.aggregation import masked_mean


@dataclass(frozen=True)
class ClippedSurrogate:
    """Per-token losses plus the statistics a run logs about them."""

    per_token_loss: torch.Tensor
    clip_fraction: torch.Tensor
    dual_clip_fraction: torch.Tensor
    approx_kl: torch.Tensor


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.2,
    dual_clip: float | None = None,
) -> ClippedSurrogate:
    """l = max(−A·r, −A·clip(r, 1−ε_low, 1+ε_high)); with A < 0 also capped at −A·c (dual clip)."""
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be greater than 1 (got {dual_clip})")
    log_ratio = torch.clamp(logp - old_logp, min=-20.0, max=20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    loss = torch.maximum(unclipped, clipped)
    dual_active = torch.zeros_like(loss, dtype=torch.bool)
    if dual_clip is not None:
        cap = -advantages * dual_clip
        dual_active = (advantages < 0) & (loss > cap)
        loss = torch.where(advantages < 0, torch.minimum(loss, cap), loss)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).float(), mask)
        dual_fraction = masked_mean(dual_active.float(), mask)
        approx_kl = masked_mean(old_logp - logp, mask)
    return ClippedSurrogate(loss, clip_fraction, dual_fraction, approx_kl)
