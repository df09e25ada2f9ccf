"""MAPO's mixed advantage (ALGORITHMS.md §5; Huang et al. 2025, official ``GRPOMIXPRO``).

Per group: the GRPO term (s − μ)/(σ + ε) and the advantage percent deviation
(s − μ)/(μ + ε), mixed with weight λ(p) = 1 − 4p(1 − p) on the latter, where p is the
fraction of samples that scored exactly 1.0 (the trajectory certainty).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from posttrain.algos.advantages import group_indices


def mapo_mixing_weight(success_fraction: float) -> float:
    """λ(p) = 1 − 4p(1 − p): 0 for an evenly split group, 1 for a certain one."""
    return 1.0 - 4.0 * success_fraction * (1.0 - success_fraction)


def mapo_advantages(scores: torch.Tensor, group_ids: Sequence[Hashable], epsilon: float = 1e-6) -> torch.Tensor:
    scores = scores.to(torch.float32)
    advantages = torch.zeros_like(scores)
    for members in group_indices(group_ids):
        if len(members) < 2:
            raise ValueError("MAPO needs at least two samples per group (its std and certainty are undefined)")
        idx = torch.tensor(members)
        group = scores[idx]
        mean = group.mean()
        centred = group - mean
        weight = mapo_mixing_weight((group == 1.0).float().mean().item())
        standard = centred / (group.std(unbiased=True) + epsilon)
        percent_deviation = centred / (mean + epsilon)
        advantages[idx] = (1.0 - weight) * standard + weight * percent_deviation
    return advantages
