"""Pairwise preference training on the offline loop: pairs → policy log-prob sums of chosen and
rejected → DPO / IPO / SimPO loss against (cached) reference log-probs → update.

Held-out evaluation: the loss, preference accuracy (does the implicit reward rank the chosen
completion first) and margin on held-out pairs, plus greedy answer accuracy when the data
carries reference answers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from posttrain.algos import PreferenceLoss, dpo_loss, ipo_loss, simpo_loss
from posttrain.data.loading import DataError
from posttrain.data.preference import PreferencePair, build_pairs
from posttrain.trainers.logprobs import completion_logp_sums
from posttrain.trainers.offline import OfflineTrainer

logger = logging.getLogger(__name__)


class PreferenceTrainer(OfflineTrainer):
    @property
    def required_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        data = self.recipe.data
        return (data.prompt_field, data.chosen_field, data.rejected_field)

    @property
    def eval_fields(self) -> tuple[str, ...]:
        return self.required_fields

    @property
    def uses_reference(self) -> bool:  # type: ignore[override]
        return self.recipe.algorithm.preference_loss != "simpo"

    def encode(self, rows: list[dict[str, Any]], origin: str, split: str) -> list[PreferencePair]:
        pairs, counts = build_pairs(rows, origin, self.encoder)
        if counts.empty or counts.identical:
            logger.warning("%s: dropped %d pairs with an empty and %d with identical chosen/rejected completions",
                           origin, counts.empty, counts.identical)
        if not pairs:
            raise DataError(f"{origin}: no usable preference pairs (all empty or identical)")
        self.data_counts = {**getattr(self, "data_counts", {}), **counts.metrics(split)}
        return pairs

    def setup_family(self) -> None:
        self.eval_pairs: list[PreferencePair] = []
        if self.eval_examples:
            self.eval_pairs = self.encode([e.fields for e in self.eval_examples], "held-out split", "eval")
        self.setup_reference({"train": _sides(self.examples), "eval": _sides(self.eval_pairs)})

    def pair_loss(self, indices: list[int], pairs: list[PreferencePair], dataset: str,
                  policy: tuple[torch.Tensor, torch.Tensor], lengths: torch.Tensor) -> PreferenceLoss:
        """The configured loss of ``pairs`` given policy log-prob sums (chosen, rejected) and lengths [2B]."""
        algo = self.recipe.algorithm
        n = len(pairs)
        policy_c, policy_r = policy
        len_c, len_r = lengths[:n], lengths[n:]
        if algo.preference_loss == "simpo":
            return simpo_loss(policy_c, policy_r, len_c, len_r, algo.beta, algo.simpo_gamma)
        prompts, completions = _sides(pairs)
        ref = self.reference_logps(dataset, [*indices, *(i + self._size(dataset) for i in indices)], prompts,
                                   completions)
        ref_c, ref_r = ref[:n], ref[n:]
        if algo.preference_loss == "ipo":
            return ipo_loss(policy_c, policy_r, ref_c, ref_r, algo.beta, len_c, len_r, algo.ipo_length_normalize)
        return dpo_loss(policy_c, policy_r, ref_c, ref_r, algo.beta, algo.label_smoothing)

    def _size(self, dataset: str) -> int:
        return len(self.examples) if dataset == "train" else len(self.eval_pairs)

    def train_step(self, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        indices = self.parallel.shard(self.sampler.next_batch(self.cfg.batch_size))
        pairs = [self.examples[i] for i in indices]
        prompts, completions = _sides(pairs)
        logp, lengths = completion_logp_sums(self.model, prompts, completions, self.tokenizer.pad_token_id,
                                             self.accelerator.device)
        n = len(pairs)
        out = self.pair_loss(indices, pairs, "train", (logp[:n], logp[n:]), lengths)
        loss = out.losses.mean()
        scale, total = self.parallel.loss_share(n)
        grad_norm, applied = self.apply_update(loss * scale)
        elapsed = time.perf_counter() - t0
        means = self.parallel.weighted_mean({
            "loss": loss.item(),
            "accuracy": out.accuracy.item(),
            "reward/chosen": out.chosen_rewards.mean().item(),
            "reward/rejected": out.rejected_rewards.mean().item(),
            "reward/margin": (out.chosen_rewards - out.rejected_rewards).mean().item(),
            "logp/chosen": logp[:n].mean().item(),
            "logp/rejected": logp[n:].mean().item(),
        }, n, total)
        tokens = self.parallel.sum(sum(map(len, prompts)) + lengths.sum().item())
        metrics = {
            **means,
            "grad_norm": grad_norm,
            "nonfinite/skipped": int(not applied),
            "time/step_s": elapsed,
            "throughput/tokens_per_s": tokens / elapsed,
        }
        if step == 1:
            metrics.update(self.data_counts)
        return metrics

    def evaluate(self) -> dict[str, float]:
        metrics = self.answer_accuracy()
        if self.eval_pairs:
            prompts, completions = _sides(self.eval_pairs)
            logp, lengths = self.policy_logps(prompts, completions)
            device = self.accelerator.device
            n = len(self.eval_pairs)
            with torch.no_grad():
                out = self.pair_loss(list(range(n)), self.eval_pairs, "eval",
                                     (logp[:n].to(device), logp[n:].to(device)), lengths.to(device))
            metrics.update({
                "eval/loss": out.losses.mean().item(),
                "eval/preference_accuracy": out.accuracy.item(),
                "eval/margin": (out.chosen_rewards - out.rejected_rewards).mean().item(),
            })
        return metrics


def _sides(pairs: list[PreferencePair]) -> tuple[list[list[int]], list[list[int]]]:
    """Prompts and completions of all chosen sides followed by all rejected sides (2B rows)."""
    prompts = [p.prompt_ids for p in pairs]
    return prompts + prompts, [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs]
