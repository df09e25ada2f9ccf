"""Per-token KL estimators between the policy and the reference (ALGORITHMS.md §1.1).

``k1 = logp − ref``; ``k2 = ½ (logp − ref)²``; ``k3 = e^{ref − logp} − (ref − logp) − 1``
(clamped as verl does); ``abs = |k1|``. All are functions of per-token log-probs only.
"""

from __future__ import annotations

from typing import Literal

import torch

KLEstimator = Literal["k1", "k2", "k3", "abs"]
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3", "abs")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: KLEstimator = "k3") -> torch.Tensor:
    """Per-token KL estimate of π against π_ref; differentiable in ``logp``."""
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "abs":
        return log_ratio.abs()
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    if estimator == "k3":
        inner = torch.clamp(ref_logp - logp, min=-20.0, max=20.0)
        return torch.clamp(torch.exp(inner) - inner - 1.0, min=-10.0, max=10.0)
    raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {KL_ESTIMATORS}")


def adaptive_kl_coef(beta: float, kl: float, target: float, num_sequences: int, horizon: int) -> float:
    """The adaptive KL controller's next β (Ziegler et al. 2019; verl ``AdaptiveKLController``):
    ``β·(1 + clip(KL/target − 1, −0.2, 0.2)·n/horizon)``, n the sequences of this step."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return beta * (1.0 + error * num_sequences / horizon)
