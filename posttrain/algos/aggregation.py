"""Loss aggregation modes (ALGORITHMS.md §0.1).

Every mode reduces a per-token loss matrix ``[B, T]`` with a ``{0, 1}`` response mask.
Sequences with no valid token never count in a "number of sequences" denominator.
"""

from __future__ import annotations

from typing import Literal

import torch

LossAggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
LOSS_AGG_MODES: tuple[str, ...] = (
    "token-mean",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
)


def aggregate_loss(
    loss: torch.Tensor,
    mask: torch.Tensor,
    mode: LossAggMode,
    norm_constant: float | None = None,
) -> torch.Tensor:
    """Reduce ``loss[B, T]`` over the tokens selected by ``mask[B, T]``.

    ``norm_constant`` is C of ``seq-mean-token-sum-norm`` (TRL's ``dr_grpo`` form,
    Σ m·ℓ / (B·C)); it defaults to the padded length T. B counts every row, as in TRL,
    so the loss scale does not depend on how many responses came back empty.
    """
    mask = mask.to(loss.dtype)
    masked = loss * mask
    if mode == "token-mean":
        return masked.sum() / mask.sum().clamp(min=1.0)
    token_counts = mask.sum(dim=-1)
    seq_sums = masked.sum(dim=-1)
    valid = token_counts > 0
    num_valid = valid.sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        per_seq = torch.where(valid, seq_sums / token_counts.clamp(min=1.0), torch.zeros_like(seq_sums))
        return per_seq.sum() / num_valid
    if mode == "seq-mean-token-sum":
        return seq_sums.sum() / num_valid
    if mode == "seq-mean-token-sum-norm":
        constant = float(loss.shape[-1]) if norm_constant is None else float(norm_constant)
        return seq_sums.sum() / (loss.shape[0] * constant)
    raise ValueError(f"unknown loss aggregation mode {mode!r}; expected one of {LOSS_AGG_MODES}")


def loss_units(mask: torch.Tensor, mode: LossAggMode) -> torch.Tensor:
    """How many units ``aggregate_loss`` averages over for ``mask``: tokens (``token-mean``), sequences
    with a valid token (``seq-mean-token-mean``, ``seq-mean-token-sum``) or rows
    (``seq-mean-token-sum-norm``). Processes that each hold a slice of a batch weight their losses by
    these counts to reproduce the whole batch's loss."""
    if mode == "token-mean":
        return mask.sum()
    if mode == "seq-mean-token-sum-norm":
        return torch.tensor(float(mask.shape[0]))
    if mode in ("seq-mean-token-mean", "seq-mean-token-sum"):
        return (mask.sum(dim=-1) > 0).sum()
    raise ValueError(f"unknown loss aggregation mode {mode!r}; expected one of {LOSS_AGG_MODES}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is 1 (0 when the mask is empty)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
