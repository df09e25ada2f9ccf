"""Value-augmented sampling (ALGORITHMS.md §9.1) as a rollout engine: a frozen base model whose
top-k candidates are re-scored by value models at every step.

Per step the base model runs once on the batch (with its KV cache) and each value model runs
once on all B·k candidates: the value model keeps k copies of each row's cache, one per
candidate, so V(s ⊕ a) for every candidate ``a`` is one forward of one token per copy. The
chosen candidate's copy already holds s ⊕ a; it is copied k times for the next step, as beam
search reorders its cache, so no prefix is ever recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from posttrain.algos import vas_logits
from posttrain.batch import RolloutBatch
from posttrain.decoding.value_head import ValueGuide, values_from_logits
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import eos_token_ids, left_pad, pad_right, rollout_batch


@dataclass
class DecodingCost:
    """What a decoding method has spent: token evaluations of the base model (one per row per step,
    padding included, since the compute is spent) and of value or reward models, and the response
    tokens it returned. Their ratio is the method's price per returned token."""

    base_token_evals: int = 0
    scorer_token_evals: int = 0
    tokens: int = 0

    @property
    def evals_per_token(self) -> float:
        return (self.base_token_evals + self.scorer_token_evals) / max(1, self.tokens)


class _Stream:
    """One model's incremental forward over a left-padded batch with its own KV cache."""

    def __init__(self, model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor) -> None:
        self.model, self.mask, self.cache = model, mask, DynamicCache()
        self.positions = mask.sum(dim=-1, keepdim=True)  # position of the next token
        self.last = self._forward(ids, (mask.cumsum(-1) - 1).clamp(min=0))[:, -1]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                          past_key_values=self.cache, use_cache=True).logits

    def step(self, tokens: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """Append one token per row (``alive`` = 0 masks a finished row's padding); the new last outputs."""
        self.mask = torch.cat([self.mask, alive.long().unsqueeze(-1)], dim=-1)
        self.last = self._forward(tokens.unsqueeze(-1), self.positions)[:, -1]
        self.positions = self.positions + alive.long().unsqueeze(-1)
        return self.last

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder_cache(rows)
        self.mask, self.positions = self.mask[rows], self.positions[rows]


class ValueGuidedEngine:
    """Samples from softmax(ℓ/T + Σ_i β_i·(V_i(s ⊕ a) − mean_K V_i)) over the base model's top-k
    tokens (ℓ: base logits). β = 0 for every guide is top-k sampling from the base model."""

    def __init__(self, base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, guides: Sequence[ValueGuide],
                 top_k: int = 10, batch_size: int = 64) -> None:
        if not guides:
            raise ValueError("value-guided decoding needs at least one value model")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {top_k}")
        vocab = base.get_output_embeddings().weight.shape[0]
        for guide in guides:
            guide_vocab = guide.model.get_input_embeddings().weight.shape[0]
            if guide_vocab != vocab:
                raise ValueError(f"value model {guide.name!r} has a vocabulary of {guide_vocab} tokens but the base "
                                 f"model has {vocab}: a value model must share the base model's tokenizer")
        self.base, self.tokenizer, self.guides = base, tokenizer, list(guides)
        self.top_k, self.batch_size = min(top_k, vocab), batch_size
        self.eos_ids = eos_token_ids(base, tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.cost = DecodingCost()

    def sync_weights(self, model: PreTrainedModel) -> None:
        self.base = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], num_samples: int, sampling: SamplingParams) -> RolloutBatch:
        expanded = [list(p) for p in prompts for _ in range(num_samples)]
        prompt_ids, prompt_mask = left_pad(expanded, self.pad_id)
        parts = [self._generate_chunk(prompt_ids[s : s + self.batch_size], prompt_mask[s : s + self.batch_size],
                                      sampling) for s in range(0, len(expanded), self.batch_size)]
        batch = rollout_batch(prompt_ids, prompt_mask, [p[0] for p in parts], [p[1] for p in parts],
                              [i for i in range(len(prompts)) for _ in range(num_samples)], self.eos_ids, self.pad_id,
                              self.tokenizer)
        guide_values = torch.cat([pad_right(p[2], batch.response_ids.shape[1], 0.0) for p in parts])
        batch.metadata["guide_values"] = [row[m.bool()].tolist() for row, m in zip(guide_values, batch.response_mask)]
        self.cost.tokens += int(batch.response_mask.sum())
        return batch

    def _generate_chunk(self, ids: torch.Tensor, mask: torch.Tensor,
                        sampling: SamplingParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Response ids, log-probs under the guided distribution, and the first guide's V(s ⊕ a) of each
        chosen token, for one chunk of left-padded prompts."""
        device, rows, k = self.base.device, ids.shape[0], self.top_k
        ids, mask = ids.to(device), mask.to(device)
        base = _Stream(self.base, ids, mask)
        values = []
        for guide in self.guides:
            stream = _Stream(guide.model, ids, mask)
            stream.reorder(torch.arange(rows, device=device).repeat_interleave(k))
            values.append(stream)
        alive = torch.ones(rows, dtype=torch.bool, device=device)
        eos = torch.as_tensor(self.eos_ids, device=device)
        tokens, logps, chosen_values = [], [], []
        temperature = 1.0 if sampling.greedy else sampling.temperature
        for _ in range(sampling.max_new_tokens):
            logits = base.last.float() / temperature
            candidates = logits.topk(k, dim=-1).indices
            flat = candidates.reshape(-1)
            repeated_alive = alive.repeat_interleave(k)
            candidate_values = [values_from_logits(stream.step(flat, repeated_alive), guide.support).view(rows, k)
                                for stream, guide in zip(values, self.guides)]
            self.cost.base_token_evals += rows
            self.cost.scorer_token_evals += len(self.guides) * rows * k
            adjusted = vas_logits(logits, candidates, candidate_values, [g.beta for g in self.guides])
            log_probs = adjusted.log_softmax(dim=-1)
            if sampling.greedy:
                token = adjusted.argmax(dim=-1)
            else:
                token = torch.multinomial(log_probs.exp(), 1).squeeze(-1)
            slot = (candidates == token.unsqueeze(-1)).float().argmax(dim=-1)
            chosen_values.append(candidate_values[0].gather(-1, slot.unsqueeze(-1)).squeeze(-1))
            logps.append(log_probs.gather(-1, token.unsqueeze(-1)).squeeze(-1))
            token = torch.where(alive, token, torch.full_like(token, self.pad_id))
            tokens.append(token)
            for stream in values:
                # the copy of the chosen candidate holds s ⊕ a: every row continues from it
                stream.reorder((torch.arange(rows, device=device) * k + slot).repeat_interleave(k))
            alive = alive & ~torch.isin(token, eos)
            if not alive.any():
                break
            base.step(token, alive)
        return (torch.stack(tokens, dim=1).cpu(), torch.stack(logps, dim=1).cpu(),
                torch.stack(chosen_values, dim=1).cpu())

