"""Greedy held-out accuracy on a task with reference answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from posttrain.data.prompts import Example
from posttrain.rewards.answer import MatchMode, answer_matches
from posttrain.rollout.base import RolloutEngine, SamplingParams


@dataclass(frozen=True)
class AccuracyResult:
    accuracy: float
    correct: list[bool]
    completions: list[str]


def greedy_accuracy(
    engine: RolloutEngine,
    examples: Sequence[Example],
    max_new_tokens: int,
    match: MatchMode = "exact",
) -> AccuracyResult:
    batch = engine.generate([e.prompt_ids for e in examples], 1,
                            SamplingParams(max_new_tokens=max_new_tokens, greedy=True))
    correct = [answer_matches(c, e.answer, match) for c, e in zip(batch.completions, examples)]
    return AccuracyResult(sum(correct) / max(len(correct), 1), correct, batch.completions)
