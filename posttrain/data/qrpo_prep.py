"""``posttrain qrpo-prep``: the data QRPO trains on (ALGORITHMS.md §8.4).

For every prompt, ``samples`` completions are drawn from the reference policy (``reference.path``,
else the recipe's model) with the recipe's sampling settings and scored with its rewards; their
rewards become the prompt's ``ref_rewards``. The dataset's own completions become pointwise rows
(prompt, completion, reward, ref_rewards): both sides of a ``chosen``/``rejected`` pair, or the
``completion`` column; each keeps the reward its row carries in ``data.reward_field`` (pairs:
``chosen_reward`` / ``rejected_reward`` fields) or, without one, is scored with the same rewards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.config.schema import Recipe
from posttrain.data.loading import DataError
from posttrain.data.prompts import Example
from posttrain.data.sampling import Sampler, write_in_chunks


def write_qrpo_data(recipe: Recipe, out_dir: str | Path, samples: int = 6, splits: tuple[str, ...] = ("train", "test"),
                    chunk: int = 64) -> dict[str, int]:
    """Write ``<out_dir>/<split>.jsonl`` pointwise rows (resumable); returns rows per split."""
    if samples < 1:
        raise ValueError(f"need at least 1 reference sample per prompt; got {samples}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reference = recipe.model
    if recipe.reference.path is not None:
        reference = reference.model_copy(update={"path": recipe.reference.path, "tiny": None})
    sampler = Sampler.from_recipe(recipe, reference)
    written: dict[str, int] = {}
    for split in splits:
        examples = sampler.examples(split, ())

        def produce(start: int, end: int, examples=examples) -> list[dict[str, Any]]:
            part = examples[start:end]
            _, ref_scores = sampler.sample(part, samples)
            rows = []
            for example, refs in zip(part, ref_scores.tolist()):
                for completion, reward in _completions(sampler, example):
                    rows.append({"prompt": example.fields[recipe.data.prompt_field], "answer": example.answer,
                                 "completion": completion, "reward": reward, "ref_rewards": refs})
            return rows

        written[split] = write_in_chunks(out, split, len(examples), chunk, produce, recipe.logging.progress,
                                         "qrpo-prep")
    return written


def _completions(sampler: Sampler, example: Example) -> list[tuple[Any, float]]:
    """The row's completions with their rewards (from the row when it has them, else scored)."""
    data = sampler.recipe.data
    row = example.fields
    if row.get(data.chosen_field) is not None and row.get(data.rejected_field) is not None:
        texts = [row[data.chosen_field], row[data.rejected_field]]
        given = [row.get("chosen_reward"), row.get("rejected_reward")]
    elif row.get(data.completion_field) is not None:
        texts, given = [row[data.completion_field]], [row.get(data.reward_field)]
    else:
        raise DataError(f"row {example.row} has neither {data.chosen_field!r}/{data.rejected_field!r} nor "
                        f"{data.completion_field!r}: nothing to train on")
    if any(value is None for value in given):
        if any(isinstance(text, list) for text in texts):
            raise DataError(f"row {example.row}: chat-message completions need their rewards in the data "
                            f"({data.reward_field!r}, or chosen_reward/rejected_reward)")
        scored = sampler.score([example], texts, len(texts))[0].tolist()
        given = [s if g is None else g for g, s in zip(given, scored)]
    return [(text, float(value)) for text, value in zip(texts, given)]
