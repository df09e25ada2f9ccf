"""The reward protocol and the weighted sum a recipe's ``rewards:`` list defines."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from posttrain.config.schema import RewardConfig

logger = logging.getLogger(__name__)


class RewardFn(Protocol):
    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]) -> list[float]:
        """One finite score per completion."""
        ...


REWARD_FACTORIES: dict[str, Callable[..., RewardFn]] = {}


def register_reward(name: str) -> Callable[[Callable[..., RewardFn]], Callable[..., RewardFn]]:
    def add(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        REWARD_FACTORIES[name] = factory
        return factory

    return add


class RewardError(RuntimeError):
    """A reward function failed and the recipe says to stop."""


@dataclass
class ScoredBatch:
    totals: torch.Tensor
    components: dict[str, torch.Tensor]
    errors: dict[str, int]


@dataclass
class _Term:
    name: str
    fn: RewardFn
    spec: RewardConfig


class RewardSet:
    """Scores completions with every configured reward and sums them with their weights."""

    def __init__(self, specs: Sequence[RewardConfig]) -> None:
        self.terms = []
        used: dict[str, int] = {}
        for index, spec in enumerate(specs):
            factory = REWARD_FACTORIES.get(spec.name)
            if factory is None:
                raise RewardError(
                    f"rewards[{index}].name={spec.name!r} is not a registered reward; known: {sorted(REWARD_FACTORIES)}"
                )
            try:
                fn = factory(**spec.args)
            except TypeError as err:
                raise RewardError(f"rewards[{index}].args do not fit reward {spec.name!r}: {err}") from err
            used[spec.name] = used.get(spec.name, 0) + 1
            label = spec.name if used[spec.name] == 1 else f"{spec.name}_{used[spec.name]}"
            self.terms.append(_Term(label, fn, spec))

    def score(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]) -> ScoredBatch:
        totals = torch.zeros(len(completions), dtype=torch.float32)
        components, errors = {}, {}
        for term in self.terms:
            values, failed = self._score_term(term, prompts, completions, answers)
            components[term.name] = values
            errors[term.name] = failed
            totals += term.spec.weight * values
        return ScoredBatch(totals, components, errors)

    def _score_term(
        self, term: _Term, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]
    ) -> tuple[torch.Tensor, int]:
        try:
            return torch.tensor(_checked(term, term.fn(prompts, completions, answers), len(completions))), 0
        except Exception as err:
            if term.spec.on_error == "fail":
                raise RewardError(f"reward {term.name!r} failed: {err!r} (set on_error: score_failed to continue)") from err
        values, failed = [], 0
        for prompt, completion, answer in zip(prompts, completions, answers):
            try:
                values.append(_checked(term, term.fn([prompt], [completion], [answer]), 1)[0])
            except Exception as err:  # scored as failed, counted, and logged once per sample
                failed += 1
                logger.warning("reward %r failed on a sample and scored it %s: %r", term.name,
                               term.spec.failed_score, err)
                values.append(term.spec.failed_score)
        return torch.tensor(values, dtype=torch.float32), failed


def _checked(term: _Term, values: Any, expected: int) -> list[float]:
    values = [float(v) for v in values]
    if len(values) != expected:
        raise ValueError(f"reward {term.name!r} returned {len(values)} scores for {expected} completions")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"reward {term.name!r} returned a non-finite score")
    return values
