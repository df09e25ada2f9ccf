"""Supervised fine-tuning on the offline loop: batch → log-probs → NLL of the completion → update."""

from __future__ import annotations

import time
from typing import Any

from posttrain.algos import aggregate_loss, loss_units
from posttrain.batch import prompt_completion_batch
from posttrain.trainers.base import Trainer
from posttrain.trainers.logprobs import response_logprobs


class SFTTrainer(Trainer):
    @property
    def required_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.recipe.data.prompt_field, self.recipe.data.completion_field)

    def setup_family(self) -> None:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError("SFT needs a tokenizer with an eos token to end each completion")
        self.completion_ids = [
            self.tokenizer(e.completion or "", add_special_tokens=False)["input_ids"] + [eos] for e in self.examples
        ]

    def reserved_response_tokens(self) -> int:
        return 1

    def train_step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        indices = self.parallel.shard(self.sampler.next_batch(self.cfg.batch_size))
        input_ids, attention_mask, completion_mask = prompt_completion_batch(
            [self.examples[i].prompt_ids for i in indices], [self.completion_ids[i] for i in indices],
            self.tokenizer.pad_token_id)
        device = self.accelerator.device
        width = completion_mask.shape[1]
        logp, _ = response_logprobs(self.model, input_ids.to(device), attention_mask.to(device), width)
        mask = completion_mask.to(device).float()
        mode = self.recipe.algorithm.loss_agg_mode
        loss = aggregate_loss(-logp, mask, mode)
        units = loss_units(mask, mode)
        scale, total = self.parallel.loss_share(units)
        grad_norm, applied = self.apply_update(loss * scale)
        elapsed = time.perf_counter() - t0
        return {
            **self.parallel.weighted_mean({"loss": loss.item()}, float(units), total),
            "grad_norm": grad_norm,
            "nonfinite/skipped": int(not applied),
            "time/step_s": elapsed,
            "throughput/tokens_per_s": self.parallel.sum(attention_mask.sum()) / elapsed,
        }
