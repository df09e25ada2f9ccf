"""Value-model training on a frozen policy (ALGORITHMS.md §9.1, §9.2): sample from the base model
(or, in later IVO rounds, from the base model guided by the value model as the round began), score
with the recipe's rewards, and fit V(s ⊕ y_≤t) to TD(λ) targets of the terminal reward (λ = 1:
Monte-Carlo). The base model never changes, so this is policy evaluation, not actor-critic.

The trained model is the value model (the checkpoint's ``model/`` folder, a per-token
``AutoModelForTokenClassification`` that ``posttrain decode --method vas`` loads).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import torch

from posttrain.algos import (
    categorical_value_loss,
    explained_variance,
    gae,
    grpo_advantages,
    masked_mean,
    outcome_token_rewards,
)
from posttrain.batch import RolloutBatch
from posttrain.config.schema import ModelConfig
from posttrain.decoding.guided import ValueGuidedEngine
from posttrain.decoding.value_head import ValueGuide, head_support, load_value_guide, state_values
from posttrain.evaluation.accuracy import greedy_accuracy
from posttrain.models.critic import load_critic
from posttrain.models.loading import load_causal_lm
from posttrain.rewards import RewardSet, answer_matches
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.factory import build_engine
from posttrain.trainers.base import Trainer

GUIDE_DIR = "ivo_guide"


class ValueModelTrainer(Trainer):
    generates = False  # the trained model scores; the frozen base model generates
    lora_task_type = "TOKEN_CLS"

    @property
    def required_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.recipe.data.prompt_field, self.recipe.data.answer_field)

    def load_weights(self, spec: ModelConfig, device: torch.device) -> torch.nn.Module:
        """A fresh value model from ``critic`` (default: the base model's weights with a new head), or,
        when resuming, the checkpoint's value model."""
        critic = self.recipe.critic
        if spec != self.recipe.model:
            critic = critic.model_copy(update={"path": spec.path})
        return load_critic(critic, self.recipe.model, device)

    def setup_family(self) -> None:
        device = self.accelerator.device
        self.algo = self.recipe.algorithm
        self.support = head_support(self.policy, "value model")
        self.base = load_causal_lm(self.recipe.model, device).eval()
        self.base.requires_grad_(False)
        self.base_engine = build_engine(self.recipe.rollout, self.base, self.tokenizer)
        self.engine = self.base_engine
        self.rewards = RewardSet(self.recipe.rewards)
        rollout = self.recipe.rollout
        self.sampling = SamplingParams(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                                       top_p=rollout.top_p, top_k=rollout.top_k)
        self.steps_per_round = math.ceil(self.cfg.steps / self.algo.ivo_rounds)
        self.round = 0
        self.round_guide: torch.nn.Module | None = None

    def _guided(self, model: torch.nn.Module) -> ValueGuidedEngine:
        decoding = self.recipe.decoding
        guide = ValueGuide(model, decoding.beta, self.support)
        return ValueGuidedEngine(self.base, self.tokenizer, [guide], decoding.top_k, self.recipe.rollout.batch_size)

    def _begin_round(self, index: int, guide: torch.nn.Module | None = None) -> None:
        """Round ``index`` samples from the base model guided by a frozen copy of the value model
        (``guide``, or the current one)."""
        self.round = index
        self.round_guide = guide if guide is not None else copy.deepcopy(self.policy).eval()
        self.round_guide.requires_grad_(False)
        self.engine = self._guided(self.round_guide)

    # ----------------------------------------------------------------- the step
    def train_step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        index = min((step - 1) // self.steps_per_round, self.algo.ivo_rounds - 1)
        if index > self.round:
            self._begin_round(index)
        batch, metrics = self._rollout()
        t_rollout = time.perf_counter() - t0
        device = self.accelerator.device
        mask = batch.response_mask.float()
        width = mask.shape[1]
        with torch.no_grad():
            values = state_values(self.model, batch.input_ids.to(device), batch.attention_mask.to(device), width,
                                  self.support)[0].cpu() * mask
        scores = batch.scores
        if self.algo.group_centred_values:  # s − mean of the prompt's samples: Dr.GRPO's group baseline
            scores = grpo_advantages(scores, batch.group_ids, scale_by_std=False)
        rewards = outcome_token_rewards(scores, mask)
        _, returns = gae(rewards, values, mask, self.algo.gamma, self.algo.gae_lambda_value)
        metrics.update({"value/explained_variance": explained_variance(returns, values, mask).item(),
                        "value/mean": masked_mean(values, mask).item(),
                        "value/return_mean": masked_mean(returns, mask).item()})
        losses, norms, skipped = [], [], 0
        size = len(batch)
        minibatch = self.cfg.minibatch_size or size
        for _ in range(self.cfg.epochs):
            order = torch.randperm(size)
            for start in range(0, size, minibatch):
                rows = order[start : start + minibatch]
                loss = self._loss(batch.select(rows).to(device), returns[rows].to(device))
                grad_norm, applied = self.apply_update(loss)
                losses.append(loss.item())
                norms.append(grad_norm)
                skipped += int(not applied)
        elapsed = time.perf_counter() - t0
        metrics.update({"loss": sum(losses) / len(losses), "grad_norm": sum(norms) / len(norms),
                        "nonfinite/skipped": skipped, "ivo/round": self.round, "time/rollout_s": t_rollout,
                        "time/step_s": elapsed,
                        "throughput/tokens_per_s": float(batch.response_mask.sum() + batch.prompt_mask.sum()) / elapsed})
        return metrics

    def _rollout(self) -> tuple[RolloutBatch, dict[str, Any]]:
        """Samples of this round's policy with their rewards (``batch.scores``)."""
        indices = self.sampler.next_batch(self.cfg.batch_size)
        examples = [self.examples[i] for i in indices]
        n = self.recipe.rollout.num_generations
        batch = self.engine.generate([e.prompt_ids for e in examples], n, self.sampling)
        answers = [e.answer for e in examples for _ in range(n)]
        scored = self.rewards.score_rollout(examples, batch)
        scores = scored.totals
        if self.algo.missing_eos_penalty is not None:
            scores = scores - self.algo.missing_eos_penalty * (~batch.finished).float()
        batch.scores = scores
        correct = [answer_matches(c, a, self.answer_match_mode()) for c, a in zip(batch.completions, answers)]
        metrics: dict[str, Any] = {"reward/mean": scores.mean().item(), "accuracy": sum(correct) / len(correct),
                                   "response_length/mean": batch.response_lengths.float().mean().item()}
        for name, values in scored.components.items():
            metrics[f"reward/{name}"] = values.mean().item()
            metrics[f"reward/{name}/errors"] = scored.errors[name]
            metrics[f"time/reward/{name}_s"] = scored.seconds[name]
        return batch, metrics

    def _loss(self, mb: RolloutBatch, returns: torch.Tensor) -> torch.Tensor:
        """0.5·masked mean of (V − R)² (no value clipping), or cross-entropy to R's bin distribution."""
        values, logits = state_values(self.model, mb.input_ids, mb.attention_mask, mb.response_ids.shape[1],
                                      self.support)
        mask = mb.response_mask.float()
        spec = self.recipe.critic
        if spec.head == "scalar":
            return 0.5 * masked_mean((values - returns) ** 2, mask)
        return categorical_value_loss(logits, returns, mask, spec.head, spec.v_min, spec.v_max)

    def evaluate(self) -> dict[str, float]:
        """Held-out greedy accuracy of decoding guided by the current value model (recipe.decoding)."""
        was_training = self.model.training
        self.model.eval()
        try:
            result = greedy_accuracy(self._guided(self.policy), self.eval_examples,
                                     self.recipe.rollout.max_new_tokens, self.answer_match_mode())
        finally:
            self.model.train(was_training)
        return {"eval/accuracy": result.accuracy}

    # ------------------------------------------------------------- checkpoints
    def family_state(self) -> dict[str, Any]:
        return {"round": self.round}

    def save_family_models(self, checkpoint: Path) -> None:
        if self.round_guide is not None:
            self.round_guide.save_pretrained(checkpoint / GUIDE_DIR)

    def load_family_state(self, state: dict[str, Any]) -> None:
        if state.get("round", 0) > 0:
            assert self.resume_from is not None
            guide = load_value_guide(str(self.resume_from / GUIDE_DIR), 0.0, self.accelerator.device).model
            self._begin_round(state["round"], guide)
