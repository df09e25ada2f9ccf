"""Bradley-Terry reward-model training on the offline loop: pairs → r(chosen), r(rejected) →
−log σ(r_c − r_r) → update. Held-out evaluation is pair accuracy."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn.functional as F

from posttrain.config.schema import ModelConfig
from posttrain.data.loading import DataError
from posttrain.data.preference import usable_pairs
from posttrain.data.prompts import EpochSampler, Example
from posttrain.models.reward_model import encode_texts, load_reward_model, reward_logits, score_texts
from posttrain.trainers.base import Trainer

logger = logging.getLogger(__name__)


class RewardModelTrainer(Trainer):
    generates = False
    lora_task_type = "SEQ_CLS"

    @property
    def required_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        data = self.recipe.data
        return (data.prompt_field, data.chosen_field, data.rejected_field)

    @property
    def eval_fields(self) -> tuple[str, ...]:
        return self.required_fields

    def load_weights(self, spec: ModelConfig, device: torch.device) -> torch.nn.Module:
        return load_reward_model(spec, device)

    def reserved_response_tokens(self) -> int:
        return 1

    def setup_family(self) -> None:
        data = self.recipe.data
        self.dropped_pairs: dict[str, int] = {}
        self.pairs = self._pairs(self.examples, "train")
        if not self.pairs:
            raise DataError(f"data split {data.split!r}: no usable preference pairs (all empty or identical)")
        self.sampler = EpochSampler(len(self.pairs), self.cfg.seed)
        self.eval_pairs = self._pairs(self.eval_examples, "eval") if self.eval_examples else []

    def _pairs(self, examples: list[Example], label: str) -> list[tuple[str, str]]:
        """(prompt + chosen, prompt + rejected) texts, without empty or identical pairs (counted)."""
        data = self.recipe.data
        prompts = [e.prompt for e in examples]
        chosen = [str(e.fields[data.chosen_field]) for e in examples]
        rejected = [str(e.fields[data.rejected_field]) for e in examples]
        keep, empty, identical = usable_pairs(prompts, chosen, rejected)
        if empty or identical:
            logger.warning("%s pairs: dropped %d with an empty and %d with identical chosen/rejected completions",
                           label, empty, identical)
        self.dropped_pairs.update({f"data/{label}_pairs_dropped_empty": empty,
                                   f"data/{label}_pairs_dropped_identical": identical})
        return [(prompts[i] + chosen[i], prompts[i] + rejected[i]) for i in keep]

    def train_step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        indices = self.parallel.shard(self.sampler.next_batch(self.cfg.batch_size))
        pairs = [self.pairs[i] for i in indices]
        device = self.accelerator.device
        ids, mask = encode_texts(self.tokenizer, [c for c, _ in pairs] + [r for _, r in pairs], self.context)
        rewards = reward_logits(self.model, ids.to(device), mask.to(device))
        chosen, rejected = rewards[: len(pairs)], rewards[len(pairs) :]
        margin = chosen - rejected
        loss = -F.logsigmoid(margin).mean()
        scale, total = self.parallel.loss_share(len(pairs))
        grad_norm, applied = self.apply_update(loss * scale)
        elapsed = time.perf_counter() - t0
        metrics = {
            **self.parallel.weighted_mean({
                "loss": loss.item(),
                "accuracy": (margin > 0).float().mean().item(),
                "margin": margin.mean().item(),
                "reward/chosen": chosen.mean().item(),
                "reward/rejected": rejected.mean().item(),
            }, len(pairs), total),
            "grad_norm": grad_norm,
            "nonfinite/skipped": int(not applied),
            "time/step_s": elapsed,
            "throughput/tokens_per_s": self.parallel.sum(mask.sum()) / elapsed,
        }
        if step == 1:
            metrics.update(self.dropped_pairs)
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Held-out pair accuracy and mean margin (the base class's key, so early stopping works too)."""
        self.model.eval()
        chosen = score_texts(self.policy, self.tokenizer, [c for c, _ in self.eval_pairs])
        rejected = score_texts(self.policy, self.tokenizer, [r for _, r in self.eval_pairs])
        self.model.train()
        margin = chosen - rejected
        return {"eval/accuracy": (margin > 0).float().mean().item(), "eval/margin": margin.mean().item()}
