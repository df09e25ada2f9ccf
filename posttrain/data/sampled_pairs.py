"""Preference pairs from a policy's own samples, labelled by the recipe's rewards.

A reward model trained only on hand-made wrong answers is easily hacked by a policy whose
mistakes look different; pairs drawn from the policy it will judge cover those mistakes.
For each prompt, ``samples`` completions are drawn and scored; the pair is (best, worst)
when their scores differ, or (the reference answer, worst) when ``gold_chosen`` is set and
no sample beats the rest. Prompts whose samples all tie are skipped.
"""

from __future__ import annotations

from pathlib import Path

import torch

from posttrain.config.schema import Recipe
from posttrain.data.sampling import Sampler, write_in_chunks


def write_sampled_pairs(recipe: Recipe, out_dir: str | Path, samples: int = 8, splits: tuple[str, ...] = ("train", "test"),
                        gold_chosen: bool = True, chunk: int = 64) -> dict[str, int]:
    """Write ``<out_dir>/<split>.jsonl`` with prompt/chosen/rejected/answer rows (resumable); returns pairs per split."""
    if samples < 2:
        raise ValueError(f"need at least 2 samples per prompt to form pairs; got {samples}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sampler = Sampler.from_recipe(recipe)
    data = recipe.data
    written: dict[str, int] = {}
    for split in splits:
        examples = sampler.examples(split, (data.answer_field,))

        def produce(start: int, end: int, examples=examples) -> list[dict]:
            part = examples[start:end]
            completions, scores = sampler.sample(part, samples)
            rows = []
            for example, texts, row_scores in zip(part, completions, scores):
                pair = _pair(texts, row_scores, example.answer, gold_chosen)
                if pair is not None:
                    rows.append({"prompt": example.fields[data.prompt_field], "answer": example.answer,
                                 "chosen": pair[0], "rejected": pair[1]})
            return rows

        written[split] = write_in_chunks(out, split, len(examples), chunk, produce, recipe.logging.progress, "pairs")
    return written


def _pair(completions: list[str], scores: torch.Tensor, answer: str, gold_chosen: bool) -> tuple[str, str] | None:
    best, worst = int(scores.argmax()), int(scores.argmin())
    rejected = completions[worst]
    if scores[best] > scores[worst] and completions[best].strip() != rejected.strip():
        return completions[best], rejected
    if gold_chosen and rejected.strip() and rejected.strip() != answer.strip():
        return answer, rejected
    return None
