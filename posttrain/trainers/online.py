"""The online RL loop, written once for every online preset:
rollout → score → (shape) → advantages → (filter, refill) → reference/old log-probs →
K epochs × minibatches → sync. Presets differ only in switches and the advantage estimator:
group estimators from the rewards alone, or GAE with a critic (PPO, VC-PPO, VAPO), whose
value loss is minimised beside the policy loss and which may train alone for a warm-up."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from posttrain.algos import (
    GroupRollout,
    adaptive_kl_coef,
    aggregate_loss,
    broadcast_to_tokens,
    clipped_surrogate,
    compute_advantages,
    entropy_bonus,
    group_indices,
    kl_penalty,
    logprob_mismatch,
    loss_units,
    masked_mean,
    overlong_penalty,
    positive_example_nll,
    truncated_is_weights,
    uniform_reward_group_fraction,
    zero_advantage_fraction,
)
from posttrain.batch import RolloutBatch, concat_batches
from posttrain.models.loading import load_causal_lm
from posttrain.rewards import RewardSet, answer_matches
from posttrain.rewards.base import ScoredBatch
from posttrain.rollout.base import SamplingParams
from posttrain.trainers.base import Trainer
from posttrain.trainers.critic import Critic
from posttrain.trainers.logprobs import response_logprobs


@dataclass
class _Round:
    """One generation round: the batch (scores and advantages filled) and what produced its reward."""

    batch: RolloutBatch
    scored: ScoredBatch
    shaping: dict[str, torch.Tensor]  # per-sample terms added to the reward (overlong penalty, KL)
    zero_fraction: float


class OnlineTrainer(Trainer):
    @property
    def required_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.recipe.data.prompt_field, self.recipe.data.answer_field)

    def setup_family(self) -> None:
        self.algo = self.recipe.algorithm
        self.advantage_options = self.algo.advantage_options()
        self.rewards = RewardSet(self.recipe.rewards)
        rollout = self.recipe.rollout
        self.sampling = SamplingParams(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                                       top_p=rollout.top_p, top_k=rollout.top_k)
        self.reference = None
        if self.algo.beta > 0 and not self.recipe.model.lora.enabled:
            reference = load_causal_lm(self.recipe.model, self.accelerator.device).eval()
            self.reference = self.parallel.prepare_frozen(reference.requires_grad_(False))
        self.kl_coef = self.algo.beta
        self.rollout_kl: float | None = None
        self.value_warmup_over = False
        self.critic = None
        if self.algo.advantage_estimator == "gae":
            self.critic = Critic(self.recipe, self.parallel, self._lr_factor, self.resume_from)

    def policy_frozen(self, step: int) -> bool:
        """During the value warm-up only the critic learns, on rollouts of the unchanged policy."""
        return (self.critic is not None and step <= self.algo.value_warmup_steps
                and not self.value_warmup_over)

    def train_step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        batch, metrics = self._collect()
        t_rollout = time.perf_counter() - t0
        frozen = self.policy_frozen(step)
        if self.critic is not None:
            metrics.update(self.critic.rollout_metrics(batch))
            metrics["critic/warmup"] = int(frozen)
        self._prepare_logprobs(batch)
        t1 = time.perf_counter()
        if not frozen and hasattr(self.engine, "release_memory"):  # a colocated engine's sleep mode
            self.engine.release_memory()
        metrics.update(self._update(batch, frozen))
        if not frozen:
            self.engine.sync_weights(self.policy)
        self._after_step(frozen, metrics, len(batch))
        elapsed = time.perf_counter() - t0
        tokens = int(batch.response_mask.sum() + batch.prompt_mask.sum())
        lengths = batch.response_lengths.float()
        metrics.update({
            "response_length/mean": lengths.mean().item(),
            "response_length/max": lengths.max().item(),
            "response_length/truncated_fraction": 1.0 - batch.finished.float().mean().item(),
            "time/rollout_s": t_rollout,
            "time/update_s": time.perf_counter() - t1,
            "time/step_s": elapsed,
            "throughput/tokens_per_s": tokens / elapsed,
        })
        return metrics

    def _after_step(self, frozen: bool, metrics: dict[str, Any], sequences: int) -> None:
        """Step the critic's schedule, end the value warm-up once the critic explains enough of the
        returns, and move β with the adaptive KL controller."""
        if self.critic is not None:
            self.critic.scheduler.step()
            threshold = self.algo.value_warmup_min_explained_variance
            if frozen and threshold is not None and metrics["critic/explained_variance"] >= threshold:
                self.value_warmup_over = True
        if self.algo.beta > 0:
            measured = metrics.get("kl", self.rollout_kl)
            if self.algo.kl_target is not None and measured is not None:
                self.kl_coef = adaptive_kl_coef(self.kl_coef, measured, self.algo.kl_target, sequences,
                                                self.algo.kl_horizon)
            metrics["kl_coef"] = self.kl_coef

    def family_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kl_coef": self.kl_coef, "value_warmup_over": self.value_warmup_over}
        if self.critic is not None:
            state["critic"] = self.critic.state_dict()
        return state

    def load_family_state(self, state: dict[str, Any]) -> None:
        self.kl_coef = state.get("kl_coef", self.algo.beta)
        self.value_warmup_over = state.get("value_warmup_over", False)
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])

    def save_family_models(self, checkpoint: Path) -> None:
        if self.critic is not None:
            self.critic.save(checkpoint)

    # ------------------------------------------------------------ rollout and advantages
    def _collect(self) -> tuple[RolloutBatch, dict[str, Any]]:
        """One generation round, or with dynamic sampling, rounds until the batch holds
        ``batch_size`` groups that carry gradient (at most ``dynamic_sampling_max_rounds``)."""
        wanted = self.cfg.batch_size
        max_rounds = self.algo.dynamic_sampling_max_rounds if self.algo.dynamic_sampling else 1
        rounds: list[_Round] = []
        kept: list[RolloutBatch] = []
        groups_kept = 0
        while len(rounds) < max_rounds and groups_kept < wanted:
            current = self._generate_round(wanted, len(rounds))
            rounds.append(current)
            groups = group_indices(current.batch.group_ids)
            if self.algo.dynamic_sampling:
                groups = [g for g in groups if bool((current.batch.advantages[g] != 0).any())]
            groups = groups[: wanted - groups_kept]
            if groups:
                kept.append(current.batch.select([i for g in groups for i in g]))
                groups_kept += len(groups)
        if not kept:  # no round had an informative group: train on the last one (KL/entropy gradient only)
            kept = [rounds[-1].batch]
        batch = concat_batches(kept) if len(kept) > 1 else kept[0]
        metrics = self._round_metrics(rounds)
        # engines with state worth plotting (the vllm-server engine: servers still answering)
        metrics.update(getattr(self.engine, "metrics", dict)())
        if self.algo.dynamic_sampling:
            seen = sum(len(group_indices(r.batch.group_ids)) for r in rounds)
            metrics.update({"dynamic_sampling/rounds": len(rounds), "dynamic_sampling/kept_groups": groups_kept,
                            "dynamic_sampling/dropped_groups": seen - groups_kept})
        return batch, metrics

    def _generate_round(self, num_prompts: int, round_index: int) -> _Round:
        """Generate, score, shape the reward, and attach token-level (weighted) advantages.

        In a launched world each process generates and scores its slice of the prompts (their
        samples seeded by row, so they equal a single process's) and the slices are gathered, so
        every process holds the whole batch from here on."""
        indices = self.sampler.next_batch(num_prompts)
        examples = [self.examples[i] for i in self.parallel.shard(indices)]
        n = self.recipe.rollout.num_generations
        seed = _sampling_seed(self.cfg.seed, self.step, round_index) + self.parallel.row_offset(len(indices) * n)
        batch = self.engine.generate([e.prompt_ids for e in examples], n, replace(self.sampling, seed=seed))
        answers = [e.answer for e in examples for _ in range(n)]
        scored = self.rewards.score_rollout(examples, batch)
        batch.metadata["correct"] = [answer_matches(c, a, self.answer_match_mode())
                                     for c, a in zip(batch.completions, answers)]
        batch, scored = self._gather(batch, scored)
        scores = scored.totals
        shaping: dict[str, torch.Tensor] = {}
        token_kl = None
        if self.algo.overlong_buffer is not None:
            shaping["overlong_penalty"] = overlong_penalty(
                batch.response_lengths, self.recipe.rollout.max_new_tokens, self.algo.overlong_buffer,
                self.algo.overlong_penalty_factor)
            scores = scores + shaping["overlong_penalty"]
        if self.algo.beta > 0 and self.algo.kl_placement == "reward":
            self._prepare_logprobs(batch, force_old=True)
            token_kl = kl_penalty(batch.old_logp, batch.ref_logp, self.algo.kl_estimator) * batch.response_mask
            shaping["kl_in_reward"] = token_kl.sum(dim=-1)
            self.rollout_kl = masked_mean(token_kl, batch.response_mask.float()).item()
            if self.critic is None:  # the critic family shapes the KL into every token's reward instead
                scores = scores - self.kl_coef * shaping["kl_in_reward"]
        batch.scores = scores
        if self.critic is not None:
            self.critic.attach_advantages(batch, scores, token_kl, self.kl_coef)
            return _Round(batch, scored, shaping, zero_advantage_fraction(batch.advantages, batch.group_ids))
        rollout = GroupRollout(scores, batch.group_ids, batch.sampling_logp, batch.response_mask, scored.components)
        advantages = compute_advantages(self.algo.advantage_estimator, rollout, self.advantage_options)
        batch.advantages = broadcast_to_tokens(advantages.weighted, batch.response_mask)
        return _Round(batch, scored, shaping, zero_advantage_fraction(advantages.weighted, batch.group_ids))

    def _gather(self, batch: RolloutBatch, scored: ScoredBatch) -> tuple[RolloutBatch, ScoredBatch]:
        """Every process's slice of a round, in rank order."""
        if not self.parallel.distributed:
            return batch, scored
        pieces = self.parallel.gather_objects((batch, scored))
        parts = [s for _, s in pieces]
        merged = ScoredBatch(
            totals=torch.cat([s.totals for s in parts]),
            components={k: torch.cat([s.components[k] for s in parts]) for k in scored.components},
            errors={k: sum(s.errors[k] for s in parts) for k in scored.errors},
            seconds={k: max(s.seconds.get(k, 0.0) for s in parts) for k in scored.seconds},
        )
        return concat_batches([b for b, _ in pieces]), merged

    @staticmethod
    def _round_metrics(rounds: list[_Round]) -> dict[str, Any]:
        """Reward statistics over every generated sample, including groups dynamic sampling dropped;
        the zero-advantage fraction of the first round (the plain sampler's view)."""
        scores = torch.cat([r.batch.scores for r in rounds])
        correct = [c for r in rounds for c in r.batch.metadata["correct"]]
        metrics: dict[str, Any] = {
            "reward/mean": scores.mean().item(),
            "reward/std": scores.std().item() if len(scores) > 1 else 0.0,
            "accuracy": sum(correct) / len(correct),
            "zero_adv_group_fraction": rounds[0].zero_fraction,
            "uniform_reward_group_fraction": uniform_reward_group_fraction(rounds[0].batch.scores, rounds[0].batch.group_ids),
        }
        for name in rounds[0].scored.components:
            metrics[f"reward/{name}"] = torch.cat([r.scored.components[name] for r in rounds]).mean().item()
            metrics[f"reward/{name}/errors"] = sum(r.scored.errors[name] for r in rounds)
            metrics[f"time/reward/{name}_s"] = sum(r.scored.seconds[name] for r in rounds)
        for name in rounds[0].shaping:
            metrics[f"reward/{name}"] = torch.cat([r.shaping[name] for r in rounds]).mean().item()
        return metrics

    @torch.no_grad()
    def _prepare_logprobs(self, batch: RolloutBatch, force_old: bool = False) -> None:
        """Old log-probs from the current weights (never the engine's), reference log-probs if needed.

        Fields already filled (by KL-in-reward shaping) are kept, so nothing is computed twice."""
        needs_old = force_old or self.cfg.epochs > 1 or self._num_minibatches(len(batch)) > 1
        if needs_old and batch.old_logp is None:
            batch.old_logp = self.parallel.per_row(batch, self._logprobs_of(self.model))
        if self.algo.beta > 0 and batch.ref_logp is None:
            with self._reference_context() as reference:
                batch.ref_logp = self.parallel.per_row(batch, self._logprobs_of(reference))

    def _logprobs_of(self, model: torch.nn.Module):
        """Response log-probs of a batch's rows under ``model`` at the rollout temperature."""
        return lambda part: response_logprobs(model, part.input_ids, part.attention_mask, part.response_ids.shape[1],
                                              self.recipe.rollout.temperature)[0]

    @contextlib.contextmanager
    def _reference_context(self):
        if self.reference is not None:
            yield self.reference
        else:
            with self.policy.disable_adapter():
                yield self.model

    # ------------------------------------------------------------ optimisation
    def _num_minibatches(self, size: int) -> int:
        return math.ceil(size / (self.cfg.minibatch_size or size))

    def _update(self, batch: RolloutBatch, policy_frozen: bool = False) -> dict[str, Any]:
        """K epochs over minibatches: a policy update (unless frozen) and a critic update (if any) on each.

        Each process takes its slice of every minibatch; the minibatch order is seeded by the step, so
        all processes (and a single-process run) cut the batch alike."""
        device = self.accelerator.device
        size = len(batch)
        minibatch = self.cfg.minibatch_size or size
        totals: dict[str, list[float]] = {}
        applied = 0
        for epoch in range(self.cfg.epochs):
            shuffle = torch.Generator().manual_seed(_sampling_seed(self.cfg.seed, self.step, epoch, "minibatches"))
            order = torch.randperm(size, generator=shuffle) if minibatch < size else torch.arange(size)
            for start in range(0, size, minibatch):
                rows = order[start : start + minibatch].tolist()
                mb = batch.select(self.parallel.shard(rows)).to(device)
                stats: dict[str, float] = {}
                if not policy_frozen:
                    loss, stats = self._loss(mb)
                    stats["grad_norm"], ok = self.apply_update(loss)
                    applied += ok
                if self.critic is not None:
                    value_loss, value_stats = self.critic.loss(mb)
                    scale, total = self.parallel.loss_share(mb.response_mask.sum())
                    value_stats = self.parallel.weighted_mean(value_stats, float(mb.response_mask.sum()), total)
                    value_stats["critic/grad_norm"], _ = self.apply_update(value_loss * scale, self.critic.model,
                                                                          self.critic.optimizer)
                    stats.update(value_stats)
                for key, value in stats.items():
                    totals.setdefault(key, []).append(value)
        result = {key: sum(v) / len(v) for key, v in totals.items()}
        result["updates_applied"] = applied
        result["nonfinite/skipped"] = 0 if policy_frozen else self.cfg.epochs * self._num_minibatches(size) - applied
        return result

    def _loss(self, mb: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """This process's share of the minibatch loss (each term weighted by its units, so the
        processes' gradients average to the whole minibatch's) and the minibatch's statistics."""
        algo = self.algo
        logp, entropy = response_logprobs(self.model, mb.input_ids, mb.attention_mask, mb.response_ids.shape[1],
                                          self.recipe.rollout.temperature, with_entropy=True,
                                          entropy_grad=algo.entropy_coef > 0)
        mask = mb.response_mask.float()
        old_logp = mb.old_logp if mb.old_logp is not None else logp.detach()
        surrogate = clipped_surrogate(logp, old_logp, mb.advantages, mask, algo.clip_ratio_low,
                                      algo.clip_ratio_high, algo.dual_clip)
        per_token = surrogate.per_token_loss
        if algo.rollout_is_cap is not None:
            per_token = per_token * truncated_is_weights(old_logp, mb.sampling_logp, algo.rollout_is_cap)
        mismatch = logprob_mismatch(old_logp, mb.sampling_logp, mask)
        stats: dict[str, float] = {"rollout/logp_diff_mean": mismatch.mean_abs,
                                   "rollout/logp_diff_max": mismatch.max_abs, "rollout/kl_to_trainer": mismatch.kl}
        if algo.beta > 0:
            kl = kl_penalty(logp, mb.ref_logp, algo.kl_estimator)
            if algo.kl_placement == "loss":
                per_token = per_token + self.kl_coef * kl
            stats["kl"] = masked_mean(kl.detach(), mask).item()
        norm = algo.loss_norm_constant or self.recipe.rollout.max_new_tokens
        loss = aggregate_loss(per_token, mask, algo.loss_agg_mode, norm)
        stats["loss/policy"] = loss.item()
        if algo.entropy_coef > 0:
            loss = loss - entropy_bonus(entropy, mask, algo.entropy_coef, algo.loss_agg_mode, norm)
        units = float(loss_units(mask, algo.loss_agg_mode))
        scale, total = self.parallel.loss_share(units)
        stats["loss"] = loss.item()
        share = loss * scale
        if algo.positive_nll_coef > 0:
            positive = torch.tensor(mb.metadata["correct"], device=logp.device)
            nll = positive_example_nll(logp, mask, positive)
            nll_scale, _ = self.parallel.loss_share((mask * positive.unsqueeze(-1)).sum())
            share = share + algo.positive_nll_coef * nll * nll_scale
            stats["loss/positive_nll"] = nll.item()
            stats["loss"] += algo.positive_nll_coef * nll.item()
        stats.update({
            "policy/clip_fraction": surrogate.clip_fraction.item(),
            "policy/dual_clip_fraction": surrogate.dual_clip_fraction.item(),
            "policy/approx_kl": surrogate.approx_kl.item(),
            "entropy": masked_mean(entropy.detach(), mask).item(),
        })
        return share, self.parallel.weighted_mean(stats, units, total)



def _sampling_seed(seed: int, step: int, index: int, purpose: str = "rollout") -> int:
    """A 48-bit seed of its own for each (run seed, step, index, purpose)."""
    digest = hashlib.sha256(f"{seed}/{step}/{index}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:6], "big")
