"""Token-level returns for critic-based training (ALGORITHMS.md §1.1, §1.2, §1.4, §2.2, §3.1).

Outcome scores are placed on the last valid token, optionally shaped by a per-token KL
penalty, and turned into advantages and λ-returns by masked GAE. λ may be one number or
one value per row (length-adaptive GAE).
"""

from __future__ import annotations

import torch


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last valid position of each row; −1 for rows without one."""
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    return torch.where(mask > 0, positions, torch.full_like(positions, -1)).max(dim=-1).values


def outcome_token_rewards(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` rewards holding each sequence's score on its last valid token.

    An empty response gets its score nowhere (never at index −1); callers count those rows.
    """
    rewards = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    last = last_token_index(mask)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards[rows, last[rows]] = scores.to(torch.float32)[rows]
    return rewards


def kl_shaped_rewards(token_rewards: torch.Tensor, token_kl: torch.Tensor, beta: float,
                      mask: torch.Tensor) -> torch.Tensor:
    """KL penalty in the reward: ``r_t = score_t − β·kl_t`` on valid tokens (InstructGPT style)."""
    return (token_rewards - beta * token_kl) * mask.to(torch.float32)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation with masks; returns ``(advantages, returns)``.

    Masked positions pass ``next_value`` and the running advantage through unchanged, so
    padding or tool tokens neither consume a TD error nor break the chain (verl's
    recursion). ``lam`` is a float or a ``[B]`` tensor of per-row λ. Both outputs are zero
    outside the mask.
    """
    rewards, values, mask = rewards.float(), values.float(), mask.float()
    lam_col = torch.as_tensor(lam, dtype=torch.float32, device=rewards.device)
    lam_col = lam_col.reshape(-1) if lam_col.ndim else lam_col.expand(rewards.shape[0])
    next_value = torch.zeros(rewards.shape[0], device=rewards.device)
    running = torch.zeros_like(next_value)
    advantages = torch.zeros_like(rewards)
    for t in reversed(range(rewards.shape[1])):
        valid = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        candidate = delta + gamma * lam_col * running
        next_value = torch.where(valid > 0, values[:, t], next_value)
        running = torch.where(valid > 0, candidate, running)
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def length_adaptive_lambda(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """VAPO's per-sequence λ = 1 − 1/(α·l), clamped to [0, 1]; empty responses get 0."""
    lengths = lengths.to(torch.float32)
    lam = 1.0 - 1.0 / (alpha * lengths.clamp(min=1e-12))
    return torch.where(lengths > 0, lam.clamp(0.0, 1.0), torch.zeros_like(lam))


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Whiten over all valid tokens of the batch with the unbiased variance (verl ``masked_whiten``).

    With fewer than two valid tokens the variance is undefined; the input is returned
    unchanged (masked) instead of raising mid-run.
    """
    mask = mask.to(torch.float32)
    count = mask.sum()
    if count < 2:
        return values * mask
    mean = (values * mask).sum() / count
    var = (((values - mean) ** 2) * mask).sum() / (count - 1)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def explained_variance(returns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 − Var(R − V) / Var(R)`` over valid tokens; NaN-free (0 when the returns do not vary)."""
    mask = mask.to(torch.float32)
    count = mask.sum().clamp(min=1.0)

    def var(x: torch.Tensor) -> torch.Tensor:
        mean = (x * mask).sum() / count
        return (((x - mean) ** 2) * mask).sum() / count

    var_returns = var(returns.float())
    if var_returns <= 1e-12:
        return torch.zeros((), device=returns.device)
    return 1.0 - var(returns.float() - values.float()) / var_returns
