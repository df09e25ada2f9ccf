"""Answer-checking rewards for tasks with a reference answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from posttrain.rewards.base import register_reward

MatchMode = Literal["exact", "first_number", "last_number"]
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def extract_answer(completion: str, mode: MatchMode) -> str | None:
    if mode == "exact":
        return completion.strip()
    numbers = _NUMBER.findall(completion.replace(",", ""))
    if not numbers:
        return None
    return numbers[0] if mode == "first_number" else numbers[-1]


def answer_matches(completion: str, answer: str, mode: MatchMode = "exact") -> bool:
    extracted = extract_answer(completion, mode)
    return extracted is not None and extracted == answer.strip()


@register_reward("exact_answer")
class ExactAnswerReward:
    """``correct`` when the completion's answer equals the reference, else ``incorrect``.

    ``mode``: ``exact`` compares the whole stripped completion; ``first_number`` /
    ``last_number`` compare the first / last number in it.
    """

    def __init__(self, mode: MatchMode = "exact", correct: float = 1.0, incorrect: float = 0.0) -> None:
        if mode not in ("exact", "first_number", "last_number"):
            raise TypeError(f"mode must be exact, first_number or last_number, not {mode!r}")
        self.mode, self.correct, self.incorrect = mode, correct, incorrect

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]) -> list[float]:
        return [self.correct if answer_matches(c, a, self.mode) else self.incorrect
                for c, a in zip(completions, answers)]
