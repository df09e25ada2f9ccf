"""QRPO on the offline loop (ALGORITHMS.md §8.4): pointwise rows (prompt, completion, reward,
reference rewards) → quantile reward → transform and closed-form log Z → regression of
β·log(π/π_ref) onto R − β·log Z → update.

``posttrain qrpo-prep`` writes such rows: it samples the reference policy and scores the
samples with the recipe's rewards.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from posttrain.algos import qrpo_loss, quantile_reward, transformed_reward
from posttrain.data.loading import DataError
from posttrain.data.preference import PointwiseExample, build_pointwise
from posttrain.trainers.logprobs import completion_logp_sums
from posttrain.trainers.offline import OfflineTrainer

logger = logging.getLogger(__name__)


class QRPOTrainer(OfflineTrainer):
    @property
    def required_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.recipe.data.prompt_field, self.recipe.data.completion_field)

    @property
    def eval_fields(self) -> tuple[str, ...]:
        return self.required_fields

    def encode(self, rows: list[dict[str, Any]], origin: str, split: str) -> list[PointwiseExample]:
        examples, counts = build_pointwise(rows, origin, self.encoder)
        if counts.empty:
            logger.warning("%s: dropped %d rows with an empty completion", origin, counts.empty)
        if not examples:
            raise DataError(f"{origin}: no usable completions")
        self.data_counts = {**getattr(self, "data_counts", {}), **counts.metrics(split)}
        return examples

    def setup_family(self) -> None:
        self.eval_rows: list[PointwiseExample] = []
        if self.eval_examples:
            self.eval_rows = self.encode([e.fields for e in self.eval_examples], "held-out split", "eval")
        self.num_ref = len(self.examples[0].ref_rewards)
        if self.eval_rows and len(self.eval_rows[0].ref_rewards) != self.num_ref:
            raise DataError(f"the held-out rows have {len(self.eval_rows[0].ref_rewards)} reference rewards per "
                            f"prompt, the training rows {self.num_ref}")
        # scaled-normal-icdf: s = std of the prompt's reference rewards / its mean over the training set
        stds = torch.tensor([e.ref_rewards for e in self.examples]).std(dim=-1, unbiased=False)
        self.mean_ref_std = float(stds.mean()) or 1.0
        self.setup_reference({name: ([e.prompt_ids for e in rows], [e.completion_ids for e in rows])
                              for name, rows in (("train", self.examples), ("eval", self.eval_rows))})

    def loss_terms(self, indices: list[int], rows: list[PointwiseExample], dataset: str,
                   logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-row losses, quantile rewards and β·log(π/π_ref) (the last two detached)."""
        algo = self.recipe.algorithm
        device = logp.device
        prompts, completions = [r.prompt_ids for r in rows], [r.completion_ids for r in rows]
        ref_logp = self.reference_logps(dataset, indices, prompts, completions)
        rewards = torch.tensor([r.reward for r in rows], device=device)
        refs = torch.tensor([r.ref_rewards for r in rows], device=device)
        q = quantile_reward(rewards, refs)
        scale = refs.std(dim=-1, unbiased=False) / self.mean_ref_std
        target, log_z = transformed_reward(q, algo.qrpo_transform, algo.beta, self.num_ref, scale)
        losses = qrpo_loss(logp, ref_logp, target, log_z.to(device), algo.beta, algo.qrpo_loss_type)
        return losses, q, (algo.beta * (logp - ref_logp)).detach()

    def train_step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        indices = self.sampler.next_batch(self.cfg.batch_size)
        rows = [self.examples[i] for i in indices]
        prompts, completions = [r.prompt_ids for r in rows], [r.completion_ids for r in rows]
        logp, lengths = completion_logp_sums(self.model, prompts, completions, self.tokenizer.pad_token_id,
                                             self.accelerator.device)
        losses, q, log_ratio = self.loss_terms(indices, rows, "train", logp)
        loss = losses.mean()
        grad_norm, applied = self.apply_update(loss)
        elapsed = time.perf_counter() - t0
        metrics = {
            "loss": loss.item(),
            "quantile_reward/mean": q.mean().item(),
            "beta_log_ratio/mean": log_ratio.mean().item(),
            "beta_log_ratio/corr_with_quantile": _correlation(q, log_ratio),
            "logp/mean": logp.mean().item(),
            "grad_norm": grad_norm,
            "nonfinite/skipped": int(not applied),
            "time/step_s": elapsed,
            "throughput/tokens_per_s": float(sum(map(len, prompts)) + lengths.sum().item()) / elapsed,
        }
        if step == 1:
            metrics.update(self.data_counts)
        return metrics

    def evaluate(self) -> dict[str, float]:
        metrics = self.answer_accuracy()
        if self.eval_rows:
            logp, _ = self.policy_logps([r.prompt_ids for r in self.eval_rows],
                                        [r.completion_ids for r in self.eval_rows])
            with torch.no_grad():
                losses, q, log_ratio = self.loss_terms(list(range(len(self.eval_rows))), self.eval_rows, "eval",
                                                       logp.to(self.accelerator.device))
            metrics.update({"eval/loss": losses.mean().item(),
                            "eval/beta_log_ratio_corr_with_quantile": _correlation(q, log_ratio)})
        return metrics


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation (0 when either side is constant): does the policy move towards better completions."""
    a, b = a.float() - a.float().mean(), b.float() - b.float().mean()
    denominator = (a.norm() * b.norm()).item()
    return (a @ b).item() / denominator if denominator > 0 else 0.0
