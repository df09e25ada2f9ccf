"""Datasets written from a policy's own samples (``posttrain pairs``, ``posttrain qrpo-prep``):
a sampling set-up shared by both, and chunked, resumable writing of jsonl rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from posttrain.config.schema import ModelConfig, Recipe
from posttrain.data.loading import load_rows
from posttrain.data.prompts import Example, tokenize_examples
from posttrain.models.loading import context_length, load_policy
from posttrain.progress import ProgressReporter
from posttrain.rewards import RewardSet
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine


@dataclass
class Sampler:
    """A policy that samples ``samples`` completions per prompt and the recipe's rewards that score them."""

    recipe: Recipe
    engine: HFRolloutEngine
    rewards: RewardSet
    params: SamplingParams
    context: int
    tokenizer: Any

    @classmethod
    def from_recipe(cls, recipe: Recipe, model_spec: ModelConfig | None = None) -> Sampler:
        model, tokenizer = load_policy(model_spec or recipe.model)
        rollout = recipe.rollout
        params = SamplingParams(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                                top_p=rollout.top_p, top_k=rollout.top_k)
        context = context_length(model)
        torch.manual_seed(recipe.trainer.seed)
        return cls(recipe, HFRolloutEngine(model.eval(), tokenizer, rollout.batch_size), RewardSet(recipe.rewards),
                   params, context, tokenizer)

    def examples(self, split: str, required: tuple[str, ...]) -> list[Example]:
        data = self.recipe.data
        rows, origin = load_rows(data, split, (data.prompt_field, *required))
        return tokenize_examples(rows, origin, self.tokenizer, data, self.context, self.params.max_new_tokens)

    def sample(self, examples: list[Example], samples: int) -> tuple[list[list[str]], torch.Tensor]:
        """``samples`` completions per example and their summed rewards ([len(examples), samples])."""
        batch = self.engine.generate([e.prompt_ids for e in examples], samples, self.params)
        scores = self.score(examples, batch.completions, samples)
        completions = [batch.completions[i * samples : (i + 1) * samples] for i in range(len(examples))]
        return completions, scores

    def score(self, examples: list[Example], completions: list[str], per_example: int) -> torch.Tensor:
        prompts = [e.prompt for e in examples for _ in range(per_example)]
        answers = [e.answer for e in examples for _ in range(per_example)]
        rows = [e.fields for e in examples for _ in range(per_example)]
        return self.rewards.score(prompts, completions, answers, rows=rows).totals.view(len(examples), per_example)


def write_in_chunks(out_dir: Path, split: str, total: int, chunk: int,
                    produce: Callable[[int, int], list[dict[str, Any]]], progress: bool, label: str) -> int:
    """Append ``produce(start, end)``'s rows to ``<out_dir>/<split>.jsonl`` chunk by chunk; ``<split>.progress``
    records how many inputs are done, so an interrupted run continues where it stopped and a finished split
    is skipped. Returns the number of rows in the file."""
    target, marker = out_dir / f"{split}.jsonl", out_dir / f"{split}.progress"
    done = int(marker.read_text()) if marker.exists() else 0
    if done == 0:
        target.write_text("")
    count = sum(1 for line in target.open() if line.strip())
    with ProgressReporter(total, done, enabled=progress, label=f"{label} {split}") as bar, target.open("a") as handle:
        for start in range(done, total, chunk):
            end = min(start + chunk, total)
            for row in produce(start, end):
                handle.write(json.dumps(row) + "\n")
                count += 1
            handle.flush()
            marker.write_text(str(end))
            bar.update(end, {"rows": count})
    return count
