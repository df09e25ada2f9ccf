"""Tokenised prompts and the order they are drawn in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from posttrain.config.schema import DataConfig
from posttrain.data.loading import DataError


@dataclass(frozen=True)
class Example:
    row: int
    prompt: str
    prompt_ids: list[int]
    answer: str
    completion: str | None
    fields: dict[str, Any] = field(default_factory=dict)  # the whole source row, for rewards that need more


Messages = list[dict[str, str]]


def uses_chat_template(prompt: str | Messages, spec: DataConfig) -> bool:
    """Chat-message prompts always go through the template; plain strings when data.chat_template is set."""
    return isinstance(prompt, list) or spec.chat_template


def prompt_messages(prompt: str | Messages, spec: DataConfig) -> Messages:
    """The conversation a prompt stands for, with data.system_prompt first unless it brings its own."""
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    if spec.system_prompt and not (messages and messages[0].get("role") == "system"):
        messages.insert(0, {"role": "system", "content": spec.system_prompt})
    return messages


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | Messages, spec: DataConfig) -> str:
    if not uses_chat_template(prompt, spec):
        assert isinstance(prompt, str)
        return prompt
    if tokenizer.chat_template is None:
        raise DataError("chat-message prompts (or data.chat_template=true) need a tokenizer with a chat template")
    return tokenizer.apply_chat_template(prompt_messages(prompt, spec), tokenize=False, add_generation_prompt=True)


def tokenize_examples(
    rows: list[dict[str, Any]],
    origin: str,
    tokenizer: PreTrainedTokenizerBase,
    spec: DataConfig,
    context_limit: int,
    reserved_tokens: int,
) -> list[Example]:
    """Tokenise prompts; a prompt that leaves fewer than ``reserved_tokens`` of context is an error."""
    limit = context_limit - reserved_tokens
    if spec.max_prompt_length is not None:
        limit = min(limit, spec.max_prompt_length)
    examples = []
    for index, row in enumerate(rows):
        prompt = row[spec.prompt_field]
        text = render_prompt(tokenizer, prompt, spec)
        ids = tokenizer(text, add_special_tokens=not uses_chat_template(prompt, spec))["input_ids"]
        if len(ids) > limit:
            raise DataError(
                f"{origin}: row {index} prompt is {len(ids)} tokens; the limit is {limit} "
                f"(model context {context_limit} minus {reserved_tokens} reserved for the response"
                + (f", data.max_prompt_length={spec.max_prompt_length}" if spec.max_prompt_length else "")
                + ")"
            )
        examples.append(
            Example(
                row=index,
                prompt=text,
                prompt_ids=ids,
                answer=str(row.get(spec.answer_field, "")),
                completion=row.get(spec.completion_field),
                fields=row,
            )
        )
    return examples


class EpochSampler:
    """Draws batches from a reshuffled permutation each epoch; its state is two integers and a seed."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def next_batch(self, batch_size: int) -> list[int]:
        batch: list[int] = []
        while len(batch) < batch_size:
            if self.position >= self.size:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._permutation()
            take = min(batch_size - len(batch), self.size - self.position)
            batch.extend(self._order[self.position : self.position + take])
            self.position += take
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["size"] != self.size:
            raise DataError(f"the checkpoint was taken on {state['size']} examples, the data now has {self.size}")
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._order = self._permutation()
