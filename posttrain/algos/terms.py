"""Extra loss terms and reward shaping shared by presets: VAPO's positive-example NLL
(§3.2), the entropy bonus (§1.6) and DAPO's overlong-response penalty."""

from __future__ import annotations

import torch

from posttrain.algos.aggregation import LossAggMode, aggregate_loss


def positive_example_nll(logp: torch.Tensor, mask: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood over the responses marked ``positive`` ([B] bool);
    exactly 0 (still differentiable) when there are none."""
    selected = mask.to(torch.float32) * positive.to(torch.float32).unsqueeze(-1)
    count = selected.sum()
    if count == 0:
        return (logp * 0.0).sum()
    return -(logp * selected).sum() / count


def entropy_bonus(entropy: torch.Tensor, mask: torch.Tensor, coef: float, mode: LossAggMode,
                  norm_constant: float | None = None) -> torch.Tensor:
    """The term subtracted from the loss: ``coef · agg(H)``."""
    return coef * aggregate_loss(entropy, mask, mode, norm_constant)


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the reward.

    0 up to ``max_length − buffer`` tokens, then falling linearly to ``−factor`` at
    ``max_length`` (and staying there beyond it).
    """
    if not 0 < buffer <= max_length:
        raise ValueError(f"overlong buffer must be in (0, max_length={max_length}]; got {buffer}")
    excess = lengths.to(torch.float32) - (max_length - buffer)
    return -factor * (excess / buffer).clamp(0.0, 1.0)
