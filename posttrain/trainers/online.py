"""The online RL loop, written once for every online preset:
rollout → score → reference/old log-probs → advantages → K epochs × minibatches → sync."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch

from posttrain.algos import (
    aggregate_loss,
    broadcast_to_tokens,
    clipped_surrogate,
    grpo_advantages,
    kl_penalty,
    masked_mean,
    zero_advantage_group_fraction,
)
from posttrain.batch import RolloutBatch
from posttrain.data.prompts import Example
from posttrain.models.loading import load_causal_lm
from posttrain.rewards import RewardSet, answer_matches
from posttrain.rollout.base import SamplingParams
from posttrain.trainers.base import Trainer
from posttrain.trainers.logprobs import response_logprobs


class OnlineTrainer(Trainer):
    @property
    def required_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.recipe.data.prompt_field, self.recipe.data.answer_field)

    def setup_family(self) -> None:
        self.algo = self.recipe.algorithm
        self.rewards = RewardSet(self.recipe.rewards)
        rollout = self.recipe.rollout
        self.sampling = SamplingParams(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                                       top_p=rollout.top_p, top_k=rollout.top_k)
        self.reference = None
        if self.algo.beta > 0 and not self.recipe.model.lora.enabled:
            self.reference = load_causal_lm(self.recipe.model, self.accelerator.device).eval()
            self.reference.requires_grad_(False)

    def train_step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        indices = self.sampler.next_batch(self.cfg.batch_size)
        examples = [self.examples[i] for i in indices]
        batch = self.engine.generate([e.prompt_ids for e in examples], self.recipe.rollout.num_generations,
                                     self.sampling)
        t_rollout = time.perf_counter() - t0
        metrics = self._score(batch, examples)
        self._prepare_logprobs(batch)
        batch.advantages = broadcast_to_tokens(
            grpo_advantages(batch.scores, batch.group_ids, scale_by_std=self.algo.norm_adv_by_std,
                            epsilon=self.algo.advantage_epsilon,
                            allow_singleton_groups=self.algo.allow_singleton_groups),
            batch.response_mask,
        )
        t1 = time.perf_counter()
        metrics.update(self._update(batch))
        self.engine.sync_weights(self.policy)
        elapsed = time.perf_counter() - t0
        tokens = int(batch.response_mask.sum() + batch.prompt_mask.sum())
        lengths = batch.response_lengths.float()
        metrics.update({
            "zero_adv_group_fraction": zero_advantage_group_fraction(batch.scores, batch.group_ids),
            "response_length/mean": lengths.mean().item(),
            "response_length/max": lengths.max().item(),
            "response_length/truncated_fraction": 1.0 - batch.finished.float().mean().item(),
            "time/rollout_s": t_rollout,
            "time/update_s": time.perf_counter() - t1,
            "time/step_s": elapsed,
            "throughput/tokens_per_s": tokens / elapsed,
        })
        return metrics

    def _score(self, batch: RolloutBatch, examples: list[Example]) -> dict[str, Any]:
        n = self.recipe.rollout.num_generations
        prompts = [e.prompt for e in examples for _ in range(n)]
        answers = [e.answer for e in examples for _ in range(n)]
        scored = self.rewards.score(prompts, batch.completions, answers)
        batch.scores = scored.totals
        correct = [answer_matches(c, a, self.answer_match_mode()) for c, a in zip(batch.completions, answers)]
        metrics: dict[str, Any] = {
            "reward/mean": scored.totals.mean().item(),
            "reward/std": scored.totals.std().item() if len(scored.totals) > 1 else 0.0,
            "accuracy": sum(correct) / len(correct),
        }
        for name, values in scored.components.items():
            metrics[f"reward/{name}"] = values.mean().item()
            metrics[f"reward/{name}/errors"] = scored.errors[name]
        return metrics

    @torch.no_grad()
    def _prepare_logprobs(self, batch: RolloutBatch) -> None:
        """Old log-probs from the current weights (never the engine's), reference log-probs if needed."""
        device = self.accelerator.device
        ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
        width, temperature = batch.response_ids.shape[1], self.recipe.rollout.temperature
        if self.cfg.epochs > 1 or self._num_minibatches(len(batch)) > 1:
            batch.old_logp = response_logprobs(self.model, ids, mask, width, temperature)[0].cpu()
        if self.algo.beta > 0:
            with self._reference_context() as reference:
                batch.ref_logp = response_logprobs(reference, ids, mask, width, temperature)[0].cpu()

    @contextlib.contextmanager
    def _reference_context(self):
        if self.reference is not None:
            yield self.reference
        else:
            with self.policy.disable_adapter():
                yield self.model

    def _num_minibatches(self, size: int) -> int:
        return size // (self.cfg.minibatch_size or size)

    def _update(self, batch: RolloutBatch) -> dict[str, Any]:
        device = self.accelerator.device
        size = len(batch)
        minibatch = self.cfg.minibatch_size or size
        totals: dict[str, list[float]] = {}
        applied = 0
        for _ in range(self.cfg.epochs):
            order = torch.randperm(size) if minibatch < size else torch.arange(size)
            for start in range(0, size, minibatch):
                mb = batch.select(order[start : start + minibatch]).to(device)
                loss, stats = self._loss(mb)
                grad_norm, ok = self.apply_update(loss)
                applied += ok
                stats["grad_norm"] = grad_norm
                for key, value in stats.items():
                    totals.setdefault(key, []).append(value)
        result = {key: sum(v) / len(v) for key, v in totals.items()}
        result["updates_applied"] = applied
        result["nonfinite/skipped"] = self.cfg.epochs * (size // minibatch) - applied
        return result

    def _loss(self, mb: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        algo = self.algo
        logp, entropy = response_logprobs(self.model, mb.input_ids, mb.attention_mask, mb.response_ids.shape[1],
                                          self.recipe.rollout.temperature, with_entropy=True,
                                          entropy_grad=algo.entropy_coef > 0)
        mask = mb.response_mask.float()
        old_logp = mb.old_logp if mb.old_logp is not None else logp.detach()
        surrogate = clipped_surrogate(logp, old_logp, mb.advantages, mask, algo.clip_ratio_low,
                                      algo.clip_ratio_high, algo.dual_clip)
        per_token = surrogate.per_token_loss
        stats: dict[str, float] = {}
        if algo.beta > 0:
            kl = kl_penalty(logp, mb.ref_logp, algo.kl_estimator)
            per_token = per_token + algo.beta * kl
            stats["kl"] = masked_mean(kl.detach(), mask).item()
        if algo.entropy_coef > 0:
            per_token = per_token - algo.entropy_coef * entropy
        norm = algo.loss_norm_constant or self.recipe.rollout.max_new_tokens
        loss = aggregate_loss(per_token, mask, algo.loss_agg_mode, norm)
        stats.update({
            "loss": loss.item(),
            "policy/clip_fraction": surrogate.clip_fraction.item(),
            "policy/dual_clip_fraction": surrogate.dual_clip_fraction.item(),
            "policy/approx_kl": surrogate.approx_kl.item(),
            "entropy": masked_mean(entropy.detach(), mask).item(),
        })
        return loss, stats
