"""Group-relative outcome advantages (ALGORITHMS.md §4.1).

Pure functions of per-sample scores and group ids; the result is broadcast over the
response mask by :func:`broadcast_to_tokens`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


def group_indices(group_ids: Sequence[Hashable]) -> list[list[int]]:
    """Positions of each group, in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    for position, gid in enumerate(group_ids):
        groups.setdefault(gid, []).append(position)
    return list(groups.values())


def grpo_advantages(
    scores: torch.Tensor,
    group_ids: Sequence[Hashable],
    scale_by_std: bool = True,
    epsilon: float = 1e-6,
    allow_singleton_groups: bool = False,
) -> torch.Tensor:
    """A_b = (s_b − μ_g) / (σ_g + ε) with the unbiased group std; Dr.GRPO when ``scale_by_std`` is off.

    A singleton group has no baseline; it raises unless ``allow_singleton_groups``, in
    which case it follows verl (μ = 0, σ = 1, so A = s).
    """
    if scores.ndim != 1 or scores.shape[0] != len(group_ids):
        raise ValueError(f"scores must be 1-D with one entry per group id; got {tuple(scores.shape)} "
                         f"for {len(group_ids)} ids")
    if epsilon <= 0:
        raise ValueError("epsilon must be positive: a zero epsilon turns a tiny group std into huge advantages")
    scores = scores.to(torch.float32)
    advantages = torch.zeros_like(scores)
    for members in group_indices(group_ids):
        idx = torch.tensor(members)
        group = scores[idx]
        if len(members) == 1:
            if not allow_singleton_groups:
                raise ValueError("a group with a single sample has no baseline; use num_generations >= 2")
            advantages[idx] = group
            continue
        centred = group - group.mean()
        advantages[idx] = centred / (group.std(unbiased=True) + epsilon) if scale_by_std else centred
    return advantages


def broadcast_to_tokens(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Turn one value per sequence into a ``[B, T]`` matrix, zero outside the mask."""
    return per_sample.to(torch.float32).unsqueeze(-1) * mask.to(torch.float32)


def uniform_reward_group_fraction(scores: torch.Tensor, group_ids: Sequence[Hashable]) -> float:
    """Fraction of groups whose members all scored the same: those group-normalised
    estimators like GRPO give no gradient, whatever another estimator makes of them."""
    groups = group_indices(group_ids)
    same = sum(1 for members in groups if bool((scores[members] == scores[members[0]]).all()))
    return same / max(len(groups), 1)


def zero_advantage_fraction(advantages: torch.Tensor, group_ids: Sequence[Hashable]) -> float:
    """Fraction of groups in which every advantage (per sample [B], or per token [B, T]) is exactly
    zero: those groups carry no policy gradient."""
    groups = group_indices(group_ids)
    flat = sum(1 for members in groups if bool((advantages[members] == 0).all()))
    return flat / max(len(groups), 1)
