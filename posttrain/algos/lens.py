"""LENS: negative samples carry gradient through a confidence-calibrated reward
(ALGORITHMS.md §7; Feng et al. 2025, arXiv 2510.08696, practical algorithm).

Per group of binary rewards: the length-normalised confidence π̄_i = exp(mean_t old_logp)
of each sample, a difficulty estimate D, the calibrated reward
r̃_i = r_i − (1 − r_i)·(1/G)·π̄_i/(D − π̄_i), then GRPO normalisation for mixed groups and
de-meaning only for all-wrong groups, which enter the objective with weight α.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from posttrain.algos.advantages import group_indices

ImportanceConfidence = Literal["normalised", "sequence"]


@dataclass(frozen=True)
class LensAdvantages:
    advantages: torch.Tensor  # [B] advantage of each sample (before the weight)
    weights: torch.Tensor  # [B] objective weight: 1 for mixed groups, α for all-wrong groups, 0 for excluded
    calibrated_rewards: torch.Tensor  # [B] r̃


def normalised_confidence(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """π̄ = exp(mean log-prob over valid tokens), per row, detached; NaN for empty rows."""
    mask = mask.to(torch.float32)
    lengths = mask.sum(dim=-1)
    mean_logp = (logp.detach().float() * mask).sum(dim=-1) / lengths.clamp(min=1.0)
    return torch.where(lengths > 0, mean_logp.exp(), torch.full_like(mean_logp, float("nan")))


def lens_advantages(
    rewards: torch.Tensor,
    group_ids: Sequence[Hashable],
    old_logp: torch.Tensor,
    mask: torch.Tensor,
    negative_weight: float = 0.25,
    epsilon: float = 1e-6,
    importance_confidence: ImportanceConfidence = "normalised",
) -> LensAdvantages:
    """LENS advantages and objective weights.

    ``importance_confidence`` picks the π inside D_imp = [(1/G)Σ r_i/π_i]^{-1}: the paper
    writes the behaviour policy's probability (``"sequence"``: exp of the summed log-prob);
    ``"normalised"`` (default) uses π̄ as everywhere else, our consistency choice.
    Samples with an empty response are excluded (weight 0, advantage 0) and do not count in G.
    """
    rewards = rewards.to(torch.float32)
    if not bool(((rewards == 0) | (rewards == 1)).all()):
        raise ValueError("LENS is defined for binary rewards in {0, 1}; got "
                         f"{sorted(set(rewards.tolist()))[:6]}")
    mask = mask.to(torch.float32)
    confidence = normalised_confidence(old_logp, mask)
    sequence_prob = (old_logp.detach().float() * mask).sum(dim=-1).exp()
    advantages = torch.zeros_like(rewards)
    weights = torch.zeros_like(rewards)
    calibrated = rewards.clone()
    for members in group_indices(group_ids):
        kept = [i for i in members if mask[i].sum() > 0]
        if not kept:
            continue
        idx = torch.tensor(kept)
        r, pi = rewards[idx], confidence[idx]
        size = len(kept)
        ceiling = 2.0 * pi.max()
        correct = r.sum()
        if correct == size:
            weights[idx] = 1.0
            continue
        if correct > 0:
            pi_imp = pi if importance_confidence == "normalised" else sequence_prob[idx]
            difficulty = torch.maximum(1.0 / (r / pi_imp).mean(), ceiling)
        else:
            difficulty = ceiling
        r_tilde = r - (1.0 - r) * (pi / (difficulty - pi)) / size
        calibrated[idx] = r_tilde
        centred = r_tilde - r_tilde.mean()
        if correct > 0:
            advantages[idx] = centred / (r_tilde.std(unbiased=True) + epsilon) if size > 1 else centred
            weights[idx] = 1.0
        else:
            advantages[idx] = centred
            weights[idx] = negative_weight
    return LensAdvantages(advantages, weights, calibrated)
