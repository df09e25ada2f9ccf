"""Offline pairwise preference losses (ALGORITHMS.md §8.1–§8.3): DPO with label smoothing,
IPO with optional length normalisation, and the reference-free SimPO that Pre-DPO may use
to train its guide; Pre-DPO itself is DPO whose reference log-probs come from the guide.

Inputs are per-pair **sums** of completion token log-probs under the policy and the
reference ([B] each). Every function returns the per-pair losses and the statistics the
trainers log, so the reduction stays with the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PreferenceLoss:
    losses: torch.Tensor  # [B]
    chosen_rewards: torch.Tensor  # [B] β·ρ_c, detached
    rejected_rewards: torch.Tensor  # [B] β·ρ_r, detached
    margins: torch.Tensor  # [B] the h the loss saw (length-normalised for IPO when switched on), detached

    @property
    def accuracy(self) -> torch.Tensor:
        """Fraction of pairs whose implicit reward ranks the chosen completion higher."""
        return (self.chosen_rewards > self.rejected_rewards).float().mean()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> PreferenceLoss:
    """``−(1−ε)·log σ(βh) − ε·log σ(−βh)`` with h = (π_c − ref_c) − (π_r − ref_r) (TRL ``sigmoid``)."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5); got {label_smoothing}")
    rho_c, rho_r = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    h = rho_c - rho_r
    losses = -(1.0 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    return PreferenceLoss(losses, (beta * rho_c).detach(), (beta * rho_r).detach(), h.detach())


def dpo_pair_weight(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """σ(−βh): how strongly DPO's gradient pushes each pair (0.5 when policy = reference).
    Pre-DPO changes it through the guide's log-probs in ``ref_*``."""
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return torch.sigmoid(-beta * h)


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    tau: float = 0.1,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    length_normalize: bool = True,
) -> PreferenceLoss:
    """``(h − 1/(2τ))²``; with ``length_normalize`` each log-ratio is divided by its completion's
    token count first (TRL's IPO; lengths clamped to ≥ 1)."""
    rho_c, rho_r = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    if length_normalize:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("length-normalised IPO needs chosen_lengths and rejected_lengths")
        h = rho_c / chosen_lengths.clamp(min=1) - rho_r / rejected_lengths.clamp(min=1)
    else:
        h = rho_c - rho_r
    losses = (h - 1.0 / (2.0 * tau)) ** 2
    return PreferenceLoss(losses, (tau * rho_c).detach(), (tau * rho_r).detach(), h.detach())


def simpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float = 2.0,
    gamma: float = 0.5,
) -> PreferenceLoss:
    """``−log σ(β·(logp_c/|y_c| − logp_r/|y_r|) − γ)``: no reference model; the implicit reward
    is the length-normalised log-likelihood (Meng, Xia, Chen 2024, SimPO, arXiv 2405.14734)."""
    reward_c = policy_chosen / chosen_lengths.clamp(min=1)
    reward_r = policy_rejected / rejected_lengths.clamp(min=1)
    h = reward_c - reward_r
    losses = -F.logsigmoid(beta * h - gamma)
    return PreferenceLoss(losses, (beta * reward_c).detach(), (beta * reward_r).detach(), h.detach())
