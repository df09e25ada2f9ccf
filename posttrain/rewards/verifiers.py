"""Rule rewards: a math-answer verifier on math-verify, format checks, and length penalties."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import torch

from posttrain.algos.terms import overlong_penalty
from posttrain.rewards.base import register_reward


def _timeout(seconds: int) -> int | None:
    """math-verify times out with ``signal.alarm`` (whole seconds), which only works on the main thread."""
    return seconds if threading.current_thread() is threading.main_thread() else None


@register_reward("math_answer")
class MathAnswerReward:
    """``correct`` when the completion's final answer is mathematically equal to the reference.

    The answer is extracted from the completion's last ``\\boxed{}`` (preferred), a "final answer
    is …" phrase, or its last LaTeX/plain expression; equality is math-verify's (fractions,
    decimals, percentages, LaTeX, sets and intervals). A reference that math-verify cannot
    parse is a data error and raises.
    """

    def __init__(self, correct: float = 1.0, incorrect: float = 0.0, timeout_s: int = 5) -> None:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        self._parse, self._verify = parse, verify
        if int(timeout_s) != timeout_s or timeout_s < 1:
            raise TypeError(f"timeout_s must be a whole number of seconds >= 1, not {timeout_s!r}")
        self.correct, self.incorrect, self.timeout_s = correct, incorrect, int(timeout_s)
        self.config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    def matches(self, completion: str, answer: str) -> bool:
        timeout = _timeout(self.timeout_s)
        gold = self._parse(answer if "$" in answer or "boxed" in answer else f"${answer}$", self.config,
                     parsing_timeout=timeout)
        if not gold:
            raise ValueError(f"math-verify cannot parse the reference answer {answer!r}")
        last_box = completion.rfind("\\boxed")
        final = completion[last_box:] if last_box >= 0 else completion  # a revised answer replaces earlier ones
        predicted = self._parse(final, self.config, parsing_timeout=timeout)
        return bool(predicted) and self._verify(gold, predicted, timeout_seconds=timeout)

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 **_: Any) -> list[float]:
        return [self.correct if self.matches(c, a) else self.incorrect for c, a in zip(completions, answers)]


@register_reward("format")
class FormatReward:
    """Rewards the shape of a completion, not its content.

    ``pattern``: a regular expression the completion must match (``fullmatch`` or anywhere
    with ``search: true``; DOTALL). ``required_tags``: strings that must all appear, in
    order (e.g. ``["<think>", "</think>", "<answer>", "</answer>"]``). With ``partial: true``
    the score is the fraction of tags present instead of all-or-nothing.
    """

    def __init__(self, pattern: str | None = None, search: bool = False, required_tags: Sequence[str] = (),
                 partial: bool = False, matched: float = 1.0, unmatched: float = 0.0) -> None:
        if pattern is None and not required_tags:
            raise TypeError("format reward needs a pattern, required_tags, or both")
        try:
            self.regex = re.compile(pattern, re.DOTALL) if pattern is not None else None
        except re.error as err:
            raise TypeError(f"pattern {pattern!r} is not a valid regular expression: {err}") from err
        self.search, self.tags, self.partial = search, list(required_tags), partial
        self.matched, self.unmatched = matched, unmatched

    def score(self, completion: str) -> float:
        if self.regex is not None:
            found = self.regex.search(completion) if self.search else self.regex.fullmatch(completion.strip())
            if found is None:
                return self.unmatched
        if not self.tags:
            return self.matched
        position, present = 0, 0
        for tag in self.tags:
            index = completion.find(tag, position)
            if index < 0:
                if not self.partial:
                    return self.unmatched
                continue
            present += 1
            position = index + len(tag)
        fraction = present / len(self.tags)
        return self.unmatched + (self.matched - self.unmatched) * fraction

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 **_: Any) -> list[float]:
        return [self.score(c) for c in completions]


def _lengths(completions: Sequence[str], completion_ids: Sequence[Sequence[int]] | None, unit: str) -> torch.Tensor:
    if unit == "tokens":
        if completion_ids is None:
            raise ValueError("a token-length reward needs completion_ids")
        return torch.tensor([len(ids) for ids in completion_ids], dtype=torch.float32)
    return torch.tensor([len(c) for c in completions], dtype=torch.float32)


@register_reward("length_penalty")
class LengthPenaltyReward:
    """``−coef · max(0, length − free) / (max_length − free)``, capped at ``−coef``: nothing up
    to ``free`` tokens (or characters with ``unit: chars``), then linearly more."""

    def __init__(self, max_length: int, free: int = 0, coef: float = 1.0, unit: str = "tokens") -> None:
        if unit not in ("tokens", "chars"):
            raise TypeError(f"unit must be 'tokens' or 'chars', not {unit!r}")
        if not 0 <= free < max_length:
            raise TypeError(f"need 0 <= free < max_length; got free={free}, max_length={max_length}")
        self.max_length, self.free, self.coef, self.unit = max_length, free, coef, unit

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 completion_ids: Sequence[Sequence[int]] | None = None, **_: Any) -> list[float]:
        excess = (_lengths(completions, completion_ids, self.unit) - self.free).clamp(min=0)
        return (-self.coef * (excess / (self.max_length - self.free)).clamp(max=1.0)).tolist()


@register_reward("overlong_penalty")
class OverlongPenaltyReward:
    """DAPO's soft overlong punishment as a reward term: 0 up to ``max_length − buffer``
    tokens, then down linearly to ``−factor`` at ``max_length``."""

    def __init__(self, max_length: int, buffer: int, factor: float = 1.0) -> None:
        if not 0 < buffer <= max_length:
            raise TypeError(f"need 0 < buffer <= max_length; got buffer={buffer}, max_length={max_length}")
        self.max_length, self.buffer, self.factor = max_length, buffer, factor

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 completion_ids: Sequence[Sequence[int]] | None = None, **_: Any) -> list[float]:
        lengths = _lengths(completions, completion_ids, "tokens")
        return overlong_penalty(lengths, self.max_length, self.buffer, self.factor).tolist()
