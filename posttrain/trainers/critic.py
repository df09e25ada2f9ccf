"""The critic's part of the online loop (PPO, VC-PPO, VAPO): values of the rollout, token rewards and
GAE (decoupled, length-adaptive), the value loss, and the critic's own optimiser and schedule.

The online trainer owns one :class:`Critic` when ``algorithm.advantage_estimator`` is ``gae``;
everything else in the loop (rollout, rewards, the clipped policy update) is shared with the
group family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from posttrain.algos import (
    categorical_support,
    categorical_value_loss,
    clipped_value_loss,
    explained_variance,
    gae,
    kl_shaped_rewards,
    length_adaptive_lambda,
    masked_mean,
    masked_whiten,
    outcome_token_rewards,
)
from posttrain.batch import RolloutBatch
from posttrain.config.schema import Recipe
from posttrain.decoding.value_head import state_values
from posttrain.models.critic import load_critic
from posttrain.trainers.checkpoint import ZERO_DIR
from posttrain.trainers.parallel import Parallel

CRITIC_DIR = "critic"


def critic_values(critic: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int,
                  support: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Values [B, T] of the last ``width`` tokens — each the value of the state *before* that token,
    read where the policy's logits for that token are — and the head's raw outputs [B, T, outputs]
    (float32). ``support`` turns categorical bin logits into expected values."""
    values, logits = state_values(critic, input_ids, attention_mask, width + 1, support)
    return values[:, :-1], logits[:, :-1]


class Critic:
    def __init__(self, recipe: Recipe, parallel: Parallel, lr_factor: Callable[[int], float],
                 resume_from: Path | None) -> None:
        self.recipe, self.algo, self.spec = recipe, recipe.algorithm, recipe.critic
        self.parallel, self.accelerator = parallel, parallel.accelerator
        self.resume_from = resume_from
        spec = self.spec
        if resume_from is not None:
            spec = spec.model_copy(update={"path": str(resume_from / CRITIC_DIR)})
        model = load_critic(spec, recipe.model, self.accelerator.device).train()
        self.support = None if self.spec.head == "scalar" else categorical_support(
            self.spec.head, self.spec.v_min, self.spec.v_max, self.spec.num_bins)
        trainer = recipe.trainer
        optimizer = parallel.adamw(list(model.parameters()), self.spec.lr or trainer.lr, trainer.betas,
                                   self.spec.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        self.model, self.optimizer = parallel.prepare_trainable(model, optimizer, trainer.max_grad_norm)

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    # ----------------------------------------------------------- advantages
    @torch.no_grad()
    def attach_advantages(self, batch: RolloutBatch, scores: torch.Tensor, token_kl: torch.Tensor | None,
                          kl_coef: float) -> None:
        """Fill ``values``, ``returns`` and token-level ``advantages`` of the batch.

        Rewards: the outcome score on the last valid token, minus β·KL per token when the KL is
        placed in the reward. Policy advantages use λ_policy (per response with length-adaptive λ),
        critic targets λ_value (decoupled GAE); the advantages are whitened over the batch's tokens.
        """
        algo = self.algo
        mask = batch.response_mask.float()
        values = self.parallel.per_row(batch, lambda part: critic_values(
            self.model, part.input_ids, part.attention_mask, mask.shape[1], self.support)[0]) * mask
        rewards = outcome_token_rewards(scores, mask)
        if token_kl is not None:
            rewards = kl_shaped_rewards(rewards, token_kl, kl_coef, mask)
        lam_policy: float | torch.Tensor = algo.gae_lambda_policy
        if algo.length_adaptive_alpha is not None:
            lam_policy = length_adaptive_lambda(batch.response_lengths, algo.length_adaptive_alpha)
        advantages, _ = gae(rewards, values, mask, algo.gamma, lam_policy)
        _, returns = gae(rewards, values, mask, algo.gamma, algo.gae_lambda_value)
        if algo.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        batch.values, batch.returns, batch.advantages = values, returns, advantages
        batch.metadata["lambda_policy"] = torch.as_tensor(lam_policy).expand(len(batch)).tolist()

    @staticmethod
    def rollout_metrics(batch: RolloutBatch) -> dict[str, float]:
        """How well the critic (before this step's update) predicts the returns it is trained on."""
        assert batch.values is not None and batch.returns is not None
        mask = batch.response_mask.float()
        return {
            "critic/explained_variance": explained_variance(batch.returns, batch.values, mask).item(),
            "critic/value_mean": masked_mean(batch.values, mask).item(),
            "critic/return_mean": masked_mean(batch.returns, mask).item(),
            "gae/lambda_policy_mean": sum(batch.metadata["lambda_policy"]) / max(1, len(batch)),
        }

    # --------------------------------------------------------------- update
    def loss(self, mb: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Clipped squared error to the returns (scalar head) or cross-entropy to their HL-Gauss /
        two-hot distribution (categorical head), token-mean over valid tokens."""
        values, logits = critic_values(self.model, mb.input_ids, mb.attention_mask, mb.response_ids.shape[1],
                                       self.support)
        mask = mb.response_mask.float()
        assert mb.returns is not None and mb.values is not None
        if self.spec.head == "scalar":
            loss, clipped = clipped_value_loss(values, mb.values, mb.returns, mask, self.algo.value_clip)
        else:
            loss = categorical_value_loss(logits, mb.returns, mask, self.spec.head, self.spec.v_min, self.spec.v_max)
            clipped = torch.zeros(())
        return loss, {"critic/value_loss": loss.item(), "critic/clip_fraction": clipped.item()}

    # --------------------------------------------------------- checkpoints
    def save(self, checkpoint: Path) -> None:
        self.parallel.save_pretrained(self.model, checkpoint / CRITIC_DIR)
        self.parallel.save_engine_state(self.model, checkpoint / ZERO_DIR / CRITIC_DIR)

    def state_dict(self) -> dict[str, Any]:
        optimizer = None if self.parallel.deepspeed else self.optimizer.state_dict()
        return {"optimizer": optimizer, "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.resume_from is not None
        self.parallel.load_optimizer_state(self.model, self.optimizer, state["optimizer"],
                                           self.resume_from / ZERO_DIR / CRITIC_DIR)
        self.scheduler.load_state_dict(state["scheduler"])
