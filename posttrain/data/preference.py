"""Offline training examples: preference pairs (DPO family) and pointwise-reward completions (QRPO).

Prompts render exactly as the online family renders them (:func:`render_prompt`), so a model
trained offline is asked the same way it is asked during rollouts. A completion given as a
string is its tokens followed by EOS (as SFT trains it); one given as chat messages is what
the chat template adds after the rendered prompt, end-of-turn marker included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from posttrain.config.schema import DataConfig
from posttrain.data.loading import DataError
from posttrain.data.prompts import Messages, prompt_messages, render_prompt, uses_chat_template


@dataclass(frozen=True)
class PreferencePair:
    row: int
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


@dataclass(frozen=True)
class PointwiseExample:
    row: int
    prompt_ids: list[int]
    completion_ids: list[int]
    reward: float
    ref_rewards: tuple[float, ...]


@dataclass
class DropCounts:
    """Rows left out of training, by reason; logged as ``data/<split>_dropped_<reason>``."""

    empty: int = 0
    identical: int = 0
    truncated: int = 0  # completions cut to fit; kept

    def metrics(self, split: str) -> dict[str, int]:
        return {f"data/{split}_dropped_empty": self.empty, f"data/{split}_dropped_identical": self.identical,
                f"data/{split}_completions_truncated": self.truncated}


class OfflineEncoder:
    """Tokenises prompts and completions of one dataset under one context budget."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, spec: DataConfig, context: int) -> None:
        if tokenizer.eos_token_id is None:
            raise DataError("offline training needs a tokenizer with an eos token to end each completion")
        self.tokenizer, self.spec, self.context = tokenizer, spec, context

    def prompt(self, prompt: str | Messages, origin: str, row: int) -> list[int]:
        text = render_prompt(self.tokenizer, prompt, self.spec)
        ids = self.tokenizer(text, add_special_tokens=not uses_chat_template(prompt, self.spec))["input_ids"]
        limit = self.context - 1
        if self.spec.max_prompt_length is not None:
            limit = min(limit, self.spec.max_prompt_length)
        if len(ids) > limit:
            raise DataError(f"{origin}: row {row} prompt is {len(ids)} tokens; the limit is {limit} "
                            "(model context minus one completion token, or data.max_prompt_length)")
        return ids

    def completion(self, prompt: str | Messages, completion: str | Messages, prompt_len: int) -> tuple[list[int], bool]:
        """Completion tokens and whether they were cut to fit the context / data.max_completion_length."""
        if isinstance(completion, list):
            head = render_prompt(self.tokenizer, prompt, self.spec)
            whole = self.tokenizer.apply_chat_template(prompt_messages(prompt, self.spec) + completion, tokenize=False)
            if not whole.startswith(head):
                raise DataError("the chat template renders prompt + completion with a different prefix than the "
                                "prompt alone; cannot tell where the completion starts")
            ids = self.tokenizer(whole[len(head):], add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(completion, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        limit = self.context - prompt_len
        if self.spec.max_completion_length is not None:
            limit = min(limit, self.spec.max_completion_length)
        return ids[:limit], len(ids) > limit


def _is_empty(value: str | Messages) -> bool:
    if isinstance(value, list):
        return all(not m["content"].strip() for m in value)
    return not value.strip()


def usable_pairs(prompts: list[str], chosen: list[str], rejected: list[str]) -> tuple[list[int], int, int]:
    """Indices of pairs worth training on, and how many were dropped as empty / identical."""
    keep, empty, identical = [], 0, 0
    for i, (c, r) in enumerate(zip(chosen, rejected)):
        if _is_empty(c) or _is_empty(r):
            empty += 1
        elif c == r:
            identical += 1
        else:
            keep.append(i)
    return keep, empty, identical


def build_pairs(rows: list[dict[str, Any]], origin: str, encoder: OfflineEncoder,
                ) -> tuple[list[PreferencePair], DropCounts]:
    """Tokenised pairs; those with an empty side or identical sides (after truncation) are dropped and counted."""
    spec = encoder.spec
    pairs, counts = [], DropCounts()
    for index, row in enumerate(rows):
        chosen, rejected = row[spec.chosen_field], row[spec.rejected_field]
        if _is_empty(chosen) or _is_empty(rejected):
            counts.empty += 1
            continue
        prompt_ids = encoder.prompt(row[spec.prompt_field], origin, index)
        chosen_ids, cut_c = encoder.completion(row[spec.prompt_field], chosen, len(prompt_ids))
        rejected_ids, cut_r = encoder.completion(row[spec.prompt_field], rejected, len(prompt_ids))
        counts.truncated += cut_c + cut_r
        if chosen_ids == rejected_ids:
            counts.identical += 1
            continue
        pairs.append(PreferencePair(index, prompt_ids, chosen_ids, rejected_ids))
    return pairs, counts


def build_pointwise(rows: list[dict[str, Any]], origin: str, encoder: OfflineEncoder,
                    ) -> tuple[list[PointwiseExample], DropCounts]:
    """Tokenised (prompt, completion, reward, reference rewards) rows; every row must carry the same number
    of finite reference rewards (QRPO's quantiles and log Z depend on it)."""
    spec = encoder.spec
    examples, counts, num_ref = [], DropCounts(), None
    for index, row in enumerate(rows):
        where = f"{origin}: row {index}"
        reward, refs = row.get(spec.reward_field), row.get(spec.ref_rewards_field)
        if not isinstance(reward, (int, float)) or isinstance(reward, bool) or not math.isfinite(reward):
            raise DataError(f"{where} field {spec.reward_field!r} must be a finite number, got {reward!r} "
                            "(set data.reward_field, or run `posttrain qrpo-prep` to score completions)")
        if not isinstance(refs, list) or not refs or not all(
                isinstance(r, (int, float)) and math.isfinite(r) for r in refs):
            raise DataError(f"{where} field {spec.ref_rewards_field!r} must be a non-empty list of finite numbers, "
                            f"got {refs!r} (run `posttrain qrpo-prep` to sample and score reference completions)")
        if num_ref is None:
            num_ref = len(refs)
        elif len(refs) != num_ref:
            raise DataError(f"{where} has {len(refs)} reference rewards; earlier rows have {num_ref}")
        completion = row[spec.completion_field]
        if _is_empty(completion):
            counts.empty += 1
            continue
        prompt_ids = encoder.prompt(row[spec.prompt_field], origin, index)
        ids, cut = encoder.completion(row[spec.prompt_field], completion, len(prompt_ids))
        counts.truncated += cut
        examples.append(PointwiseExample(index, prompt_ids, ids, float(reward), tuple(float(r) for r in refs)))
    return examples, counts
