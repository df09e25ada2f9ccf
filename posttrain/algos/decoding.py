"""Inference-time re-weighting of a frozen model (ALGORITHMS.md §9.1, §9.3): VAS's value-augmented
logits and best-of-N selection with its KL bound."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def vas_logits(
    logits: torch.Tensor,
    candidates: torch.Tensor,
    values: Sequence[torch.Tensor],
    betas: Sequence[float],
    restrict_to_candidates: bool = True,
) -> torch.Tensor:
    """ℓ'_a = ℓ_a + Σ_i β_i·(v_i,a − mean_K v_i) for the top-k candidates ``candidates`` [B, k].

    ``values`` holds one [B, k] tensor per value model (V(s ⊕ a) for each candidate) with
    its own β. With ``restrict_to_candidates`` every other token is set to −inf, which is
    what sampling "from the top-k of the base" means; otherwise they keep their logit.
    """
    if len(values) != len(betas) or not values:
        raise ValueError(f"need one beta per value model; got {len(values)} value tensors and {len(betas)} betas")
    bonus = torch.zeros(candidates.shape, dtype=logits.dtype, device=logits.device)
    for value, beta in zip(values, betas):
        bonus = bonus + beta * (value - value.mean(dim=-1, keepdim=True)).to(logits.dtype)
    base = torch.full_like(logits, float("-inf")) if restrict_to_candidates else logits.clone()
    return base.scatter(-1, candidates, logits.gather(-1, candidates) + bonus)


def best_of_n_index(scores: torch.Tensor) -> torch.Tensor:
    """Index of the best of N scores per row ([P, N] → [P]); ties go to the lowest index."""
    best = scores.max(dim=-1, keepdim=True).values
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(scores)
    return torch.where(scores == best, positions, scores.shape[-1]).min(dim=-1).values


def best_of_n_kl_bound(n: int) -> float:
    """The analytical bound log N − (N − 1)/N on KL(π_BoN ‖ π_base)."""
    if n < 1:
        raise ValueError(f"best-of-N needs N >= 1; got {n}")
    return math.log(n) - (n - 1) / n
