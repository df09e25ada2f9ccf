"""BNPO's Beta-normalised advantage (ALGORITHMS.md §6; Xiao, Zhang, Cao 2025, official code).

Group success rates p_g of the batch are fitted by Beta(a, b) with the method of moments;
each sample's advantage is (s − p_g) / f(p_g; α, β) with α = max(1 + a/3, 1),
β = max(1 + b/3, 1), f the Beta density and the weight 1/f clamped to [0, 1e6]. Several
binary reward components each get their own fit; the advantages are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import torch

from posttrain.algos.advantages import group_indices

WEIGHT_CAP = 1e6


def beta_density(p: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """The Beta(α, β) probability density at p ∈ [0, 1], computed in log space."""
    p = p.to(torch.float64)
    log_norm = math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
    log_density = log_norm + (alpha - 1.0) * torch.log(p) + (beta - 1.0) * torch.log1p(-p)
    density = torch.exp(log_density)
    # x^0 is 1 even at x = 0 (log would give 0·(−inf) = NaN).
    if alpha == 1.0:
        density = torch.where(p == 0, torch.exp(log_norm + (beta - 1.0) * torch.log1p(-p)), density)
    if beta == 1.0:
        density = torch.where(p == 1, torch.exp(log_norm + (alpha - 1.0) * torch.log(p)), density)
    return density


def fit_normalisation(group_means: torch.Tensor) -> tuple[float, float]:
    """(α, β) from the batch's group success rates (method of moments, then 1 + a/3 and clamping).

    One group (no variance) follows the official code (p̄ = 0, v = 1); a batch whose groups
    all share one rate (v < 1e-8) uses α = β = 1, i.e. a plain mean baseline.
    """
    if group_means.numel() < 2:
        mean, var = 0.0, 1.0
    else:
        mean, var = group_means.mean().item(), group_means.var(unbiased=True).item()
    if var < 1e-8:
        return 1.0, 1.0
    k = mean * (1.0 - mean) / var - 1.0
    return max(1.0 + k * mean / 3.0, 1.0), max(1.0 + k * (1.0 - mean) / 3.0, 1.0)


def bnpo_advantages(
    scores: torch.Tensor,
    group_ids: Sequence[Hashable],
    reward_min: float = 0.0,
    reward_max: float = 1.0,
) -> torch.Tensor:
    """BNPO advantage of one binary reward (scores are mapped affinely onto [0, 1] first)."""
    if reward_max <= reward_min:
        raise ValueError(f"reward_max ({reward_max}) must exceed reward_min ({reward_min})")
    scaled = (scores.to(torch.float64) - reward_min) / (reward_max - reward_min)
    groups = group_indices(group_ids)
    means = torch.tensor([scaled[g].mean().item() if len(g) > 1 else 0.0 for g in groups], dtype=torch.float64)
    if bool(((means < -1e-9) | (means > 1 + 1e-9)).any()):
        raise ValueError(f"BNPO needs rewards within [reward_min, reward_max] = [{reward_min}, {reward_max}]; "
                         f"got group means {means.tolist()}")
    means = means.clamp(0.0, 1.0)
    alpha, beta = fit_normalisation(means)
    weights = (1.0 / beta_density(means, alpha, beta)).nan_to_num(posinf=WEIGHT_CAP).clamp(0.0, WEIGHT_CAP)
    advantages = torch.zeros_like(scaled)
    for g, members in enumerate(groups):
        idx = torch.tensor(members)
        advantages[idx] = weights[g] * (scaled[idx] - means[g])
    return advantages.to(torch.float32)


def bnpo_decomposed_advantages(
    components: Mapping[str, torch.Tensor],
    group_ids: Sequence[Hashable],
    names: Sequence[str],
) -> torch.Tensor:
    """BNPO's advantage decomposition: each named binary component gets its own Beta fit;
    the result is the mean of the per-component advantages. Components are named
    explicitly, never matched by substring."""
    missing = [n for n in names if n not in components]
    if missing:
        raise ValueError(f"BNPO reward components {missing} not among the rewards {sorted(components)}")
    if not names:
        raise ValueError("BNPO decomposition needs at least one reward component")
    return torch.stack([bnpo_advantages(components[n], group_ids) for n in names]).mean(dim=0)
