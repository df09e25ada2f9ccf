"""Outcome-advantage estimators of the group family behind one signature.

Each estimator maps a :class:`GroupRollout` (per-sample scores, group ids, rollout-time
log-probs, reward components) and :class:`AdvantageOptions` to per-sample advantages and
objective weights. The online loop calls :func:`compute_advantages` and never branches on
the algorithm, so a new estimator is one function and one entry in :data:`ESTIMATORS`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from posttrain.algos.advantages import grpo_advantages
from posttrain.algos.bnpo import bnpo_advantages, bnpo_decomposed_advantages
from posttrain.algos.lens import ImportanceConfidence, lens_advantages
from posttrain.algos.mapo import mapo_advantages


@dataclass(frozen=True)
class GroupRollout:
    scores: torch.Tensor  # [B] total reward of each sample
    group_ids: Sequence[Hashable]  # [B] samples of one prompt share an id
    rollout_logp: torch.Tensor  # [B, T] log-probs under the policy that sampled them
    mask: torch.Tensor  # [B, T] response mask
    components: Mapping[str, torch.Tensor] = field(default_factory=dict)  # per-reward scores, [B] each


@dataclass(frozen=True)
class AdvantageOptions:
    norm_by_std: bool = True
    epsilon: float = 1e-6
    allow_singleton_groups: bool = False
    lens_negative_weight: float = 0.25
    lens_importance_confidence: ImportanceConfidence = "normalised"
    bnpo_components: tuple[str, ...] = ()
    bnpo_reward_range: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class Advantages:
    values: torch.Tensor  # [B] per-sample advantage
    weights: torch.Tensor  # [B] objective weight of each sample (LENS weighs all-wrong groups by α)

    @property
    def weighted(self) -> torch.Tensor:
        """Advantage × weight: the clipped surrogate is positively homogeneous in A, so this
        equals weighting each sample's loss."""
        return self.values * self.weights


Estimator = Callable[[GroupRollout, AdvantageOptions], Advantages]


def _unweighted(values: torch.Tensor) -> Advantages:
    return Advantages(values, torch.ones_like(values))


def _grpo(rollout: GroupRollout, options: AdvantageOptions) -> Advantages:
    return _unweighted(grpo_advantages(rollout.scores, rollout.group_ids, options.norm_by_std, options.epsilon,
                                       options.allow_singleton_groups))


def _mapo(rollout: GroupRollout, options: AdvantageOptions) -> Advantages:
    return _unweighted(mapo_advantages(rollout.scores, rollout.group_ids, options.epsilon))


def _bnpo(rollout: GroupRollout, options: AdvantageOptions) -> Advantages:
    if options.bnpo_components:
        return _unweighted(bnpo_decomposed_advantages(rollout.components, rollout.group_ids,
                                                      options.bnpo_components))
    low, high = options.bnpo_reward_range
    return _unweighted(bnpo_advantages(rollout.scores, rollout.group_ids, low, high))


def _lens(rollout: GroupRollout, options: AdvantageOptions) -> Advantages:
    result = lens_advantages(rollout.scores, rollout.group_ids, rollout.rollout_logp, rollout.mask,
                             options.lens_negative_weight, options.epsilon, options.lens_importance_confidence)
    return Advantages(result.advantages, result.weights)


ESTIMATORS: dict[str, Estimator] = {"grpo": _grpo, "mapo": _mapo, "bnpo": _bnpo, "lens": _lens}


def compute_advantages(name: str, rollout: GroupRollout, options: AdvantageOptions) -> Advantages:
    try:
        estimator = ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown advantage estimator {name!r}; known: {', '.join(sorted(ESTIMATORS))}") from None
    return estimator(rollout, options)
