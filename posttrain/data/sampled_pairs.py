"""Preference pairs from a policy's own samples, labelled by the recipe's rewards.

A reward model trained only on hand-made wrong answers is easily hacked by a policy whose
mistakes look different; pairs drawn from the policy it will judge cover those mistakes.
For each prompt, ``samples`` completions are drawn and scored; the pair is (best, worst)
when their scores differ, or (the reference answer, worst) when ``gold_chosen`` is set and
no sample beats the rest. Prompts whose samples all tie are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from posttrain.config.schema import Recipe
from posttrain.data.loading import load_rows
from posttrain.data.prompts import tokenize_examples
from posttrain.models.loading import load_policy
from posttrain.rewards import RewardSet
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine
from posttrain.trainers.progress import ProgressReporter


def write_sampled_pairs(recipe: Recipe, out_dir: str | Path, samples: int = 8, splits: tuple[str, ...] = ("train", "test"),
                        gold_chosen: bool = True, chunk: int = 64) -> dict[str, int]:
    """Write ``<out_dir>/<split>.jsonl`` with prompt/chosen/rejected/answer rows; returns pairs per split.

    Each finished chunk is appended and ``<split>.progress`` records how many prompts are done,
    so an interrupted run continues where it stopped and a finished split is skipped.
    """
    if samples < 2:
        raise ValueError(f"need at least 2 samples per prompt to form pairs; got {samples}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_policy(recipe.model)
    engine = HFRolloutEngine(model.eval(), tokenizer, recipe.rollout.batch_size)
    rewards = RewardSet(recipe.rewards)
    rollout = recipe.rollout
    sampling = SamplingParams(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                              top_p=rollout.top_p, top_k=rollout.top_k)
    data = recipe.data
    context = getattr(model.config, "max_position_embeddings", None) or 10**9
    written: dict[str, int] = {}
    torch.manual_seed(recipe.trainer.seed)
    for split in splits:
        rows, origin = load_rows(data, split, (data.prompt_field, data.answer_field))
        examples = tokenize_examples(rows, origin, tokenizer, data, context, rollout.max_new_tokens)
        target, progress = out / f"{split}.jsonl", out / f"{split}.progress"
        done = int(progress.read_text()) if progress.exists() else 0
        if done == 0:
            target.write_text("")
        count = sum(1 for line in target.open() if line.strip())
        with ProgressReporter(len(examples), done, enabled=recipe.logging.progress, label=f"pairs {split}") as bar, \
                target.open("a") as handle:
            for start in range(done, len(examples), chunk):
                part = examples[start : start + chunk]
                batch = engine.generate([e.prompt_ids for e in part], samples, sampling)
                prompts = [e.prompt for e in part for _ in range(samples)]
                answers = [e.answer for e in part for _ in range(samples)]
                scores = rewards.score(prompts, batch.completions, answers).totals.view(len(part), samples)
                for i, example in enumerate(part):
                    pair = _pair(batch.completions[i * samples : (i + 1) * samples], scores[i], example.answer,
                                 gold_chosen)
                    if pair is not None:
                        handle.write(json.dumps({"prompt": example.fields[data.prompt_field], "answer": example.answer,
                                                 "chosen": pair[0], "rejected": pair[1]}) + "\n")
                        count += 1
                handle.flush()
                progress.write_text(str(min(start + chunk, len(examples))))
                bar.update(min(start + chunk, len(examples)), {"pairs": count})
        written[split] = count
    return written


def _pair(completions: list[str], scores: torch.Tensor, answer: str, gold_chosen: bool) -> tuple[str, str] | None:
    best, worst = int(scores.argmax()), int(scores.argmin())
    rejected = completions[worst]
    if scores[best] > scores[worst] and completions[best].strip() != rejected.strip():
        return completions[best], rejected
    if gold_chosen and rejected.strip() and rejected.strip() != answer.strip():
        return answer, rejected
    return None

