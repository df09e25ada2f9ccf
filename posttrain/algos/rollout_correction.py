"""The rollout engine's log-probs against the trainer's: mismatch statistics and truncated
importance sampling (TIS).

A rollout engine (vLLM) samples with its own kernels and precision, so its log-probs
π_rollout differ from the trainer's recomputed π_old even at identical weights. The policy
gradient is taken as if the samples came from π_old; TIS reweights each token by
min(π_old/π_rollout, C) to correct for the difference without letting a rare token's weight explode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LogprobMismatch:
    mean_abs: float  # mean |log π_old − log π_rollout| over valid tokens
    max_abs: float
    kl: float  # KL(π_rollout ‖ π_old) estimated on the rollout's own tokens (k3: r − 1 − log r, r = π_old/π_rollout)


def logprob_mismatch(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor) -> LogprobMismatch:
    valid = mask.bool()
    if not valid.any():
        return LogprobMismatch(0.0, 0.0, 0.0)
    diff = (old_logp.float() - rollout_logp.float())[valid]
    k3 = torch.exp(diff) - 1.0 - diff
    return LogprobMismatch(diff.abs().mean().item(), diff.abs().max().item(), k3.mean().item())


def truncated_is_weights(old_logp: torch.Tensor, rollout_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-token min(π_old / π_rollout, cap), without gradient (a weight on the policy-gradient term)."""
    if cap <= 0:
        raise ValueError(f"the truncation cap must be positive (got {cap})")
    log_ratio = (old_logp.detach().float() - rollout_logp.float()).clamp(max=20.0)
    return torch.exp(log_ratio).clamp(max=cap)
