"""What the offline preference trainers share: encoding pairs or pointwise rows, and reference
log-probs, cached once per dataset or computed on the fly.

The reference is ``reference.path`` when set (a Pre-DPO guide), the policy's base weights with
the LoRA adapters switched off when training adapters (no second model in memory), and
otherwise a frozen copy of the policy's initial weights.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from posttrain.data.preference import OfflineEncoder
from posttrain.models.loading import load_causal_lm
from posttrain.trainers.base import Trainer
from posttrain.trainers.logprobs import completion_logp_sums
from posttrain.trainers.reference_logprobs import (
    cached_or_computed,
    default_cache_dir,
    score_completions,
    sequences_key,
    weights_fingerprint,
)

logger = logging.getLogger(__name__)

SCORING_BATCH = 64


class OfflineTrainer(Trainer):
    #: whether the loss compares against a reference model at all (SimPO does not)
    uses_reference: bool = True

    def build_examples(self, rows: list[dict[str, Any]], origin: str, context: int) -> list[Any]:
        self.encoder = OfflineEncoder(self.tokenizer, self.recipe.data, context)
        return self.encode(rows, origin, "train")

    def encode(self, rows: list[dict[str, Any]], origin: str, split: str) -> list[Any]:
        raise NotImplementedError

    def reserved_response_tokens(self) -> int:
        return 1

    # ------------------------------------------------------------ reference
    def setup_reference(self, datasets: dict[str, tuple[list[list[int]], list[list[int]]]]) -> None:
        """Reference log-probs of every (prompt, completion) of each named dataset, from the cache or computed
        now; with the cache off the reference stays loaded and :meth:`reference_logps` runs it per batch."""
        self.reference: torch.nn.Module | None = None
        self.cached_ref: dict[str, torch.Tensor] = {}
        if not self.uses_reference:
            return
        ref_cfg = self.recipe.reference
        if not ref_cfg.logprob_cache:
            if not self.recipe.model.lora.enabled or ref_cfg.path is not None:
                self.reference = self._load_reference()
            return
        cache_dir = Path(ref_cfg.cache_dir).expanduser() if ref_cfg.cache_dir else default_cache_dir()
        with self._reference_model() as (model, params):
            fingerprint = weights_fingerprint(params)
            for name, (prompts, completions) in datasets.items():
                key = sequences_key(fingerprint, (p + [-1] + c for p, c in zip(prompts, completions)))
                self.cached_ref[name] = cached_or_computed(cache_dir, key, lambda p=prompts, c=completions, n=name:
                                                           self._score(model, p, c, n))

    def _score(self, model: torch.nn.Module, prompts: list[list[int]], completions: list[list[int]],
               name: str) -> torch.Tensor:
        return score_completions(model, prompts, completions, self.tokenizer.pad_token_id, self.accelerator.device,
                                 SCORING_BATCH, f"reference log-probs ({name})", self.recipe.logging.progress)

    def _load_reference(self) -> torch.nn.Module:
        spec = self.recipe.model
        if self.recipe.reference.path is not None:
            spec = spec.model_copy(update={"path": self.recipe.reference.path, "tiny": None})
        model = load_causal_lm(spec, self.accelerator.device).eval()
        return self.parallel.prepare_frozen(model.requires_grad_(False))

    @contextlib.contextmanager
    def _reference_model(self) -> Iterator[tuple[torch.nn.Module, list[tuple[str, torch.Tensor]]]]:
        """The reference and the parameters that define it, for as long as the block runs."""
        if self.reference is not None:
            yield self.reference, list(self.reference.named_parameters())
        elif self.recipe.model.lora.enabled and self.recipe.reference.path is None:
            with self.policy.disable_adapter():
                yield self.policy, [(n, p) for n, p in self.policy.named_parameters() if "lora_" not in n]
        else:
            model = self._load_reference()
            try:
                yield model, list(model.named_parameters())
            finally:
                del model

    def reference_logps(self, name: str, indices: list[int], prompts: list[list[int]],
                        completions: list[list[int]]) -> torch.Tensor:
        """Reference log-prob sums of rows ``indices`` of dataset ``name`` (whose tokens are given), on the device."""
        if name in self.cached_ref:
            return self.cached_ref[name][indices].to(self.accelerator.device)
        with torch.no_grad(), self._reference_model() as (model, _):
            return completion_logp_sums(model, prompts, completions, self.tokenizer.pad_token_id,
                                        self.accelerator.device)[0]

    @torch.no_grad()
    def policy_logps(self, prompts: list[list[int]], completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy log-prob sums and completion lengths for evaluation, in batches, on the CPU."""
        self.model.eval()
        sums, lengths = [], []
        for start in range(0, len(prompts), SCORING_BATCH):
            end = start + SCORING_BATCH
            logp, length = completion_logp_sums(self.model, prompts[start:end], completions[start:end],
                                                self.tokenizer.pad_token_id, self.accelerator.device)
            sums.append(logp.cpu())
            lengths.append(length.cpu())
        self.model.train()
        return torch.cat(sums), torch.cat(lengths)

    # ----------------------------------------------------------- evaluation
    def has_answers(self) -> bool:
        field = self.recipe.data.answer_field
        return bool(self.eval_examples) and all(e.fields.get(field) not in (None, "") for e in self.eval_examples)

    def answer_accuracy(self) -> dict[str, float]:
        """Greedy held-out answer accuracy when the data carries reference answers (built-in tasks do)."""
        return super().evaluate() if self.has_answers() else {}
