"""The reward protocol and the weighted sum a recipe's ``rewards:`` list defines.

A reward function gets the batch's prompts, completions and reference answers, plus, when
its signature names them (or takes ``**kwargs``), the completions' token ids as
``completion_ids=`` and the samples' whole data rows as ``rows=``; it returns one finite
score per completion. ``rewards[i].name`` is a
registered reward, ``path/to/file.py:attr`` or ``package.module:attr``: a class there is
instantiated with ``args``; a function is the reward itself, with ``args`` bound as keywords.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from posttrain.config.schema import RewardConfig, reward_labels

logger = logging.getLogger(__name__)


if TYPE_CHECKING:
    from posttrain.batch import RolloutBatch
    from posttrain.data.prompts import Example


class RewardFn(Protocol):
    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 **context: Any) -> Sequence[float]:
        """One finite score per completion; ``context`` may carry ``completion_ids`` and ``rows``."""
        ...


REWARD_FACTORIES: dict[str, Callable[..., RewardFn]] = {}


def register_reward(name: str) -> Callable[[Callable[..., RewardFn]], Callable[..., RewardFn]]:
    def add(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        REWARD_FACTORIES[name] = factory
        return factory

    return add


class RewardError(RuntimeError):
    """A reward cannot be built, or failed and the recipe says to stop."""


@dataclass
class ScoredBatch:
    totals: torch.Tensor
    components: dict[str, torch.Tensor]
    errors: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Term:
    name: str
    fn: RewardFn
    spec: RewardConfig
    accepts: Callable[[str], bool]


def build_reward(spec: RewardConfig, where: str) -> RewardFn:
    """The callable a reward spec names; errors say which ``rewards[i]`` is wrong and why."""
    if ":" in spec.name:
        target = _load_target(spec.name, where)
        if inspect.isclass(target):
            factory: Callable[..., RewardFn] = target
        elif callable(target):
            return functools.partial(target, **spec.args) if spec.args else target
        else:
            raise RewardError(f"{where}.name={spec.name!r} is not callable")
    else:
        found = REWARD_FACTORIES.get(spec.name)
        if found is None:
            raise RewardError(f"{where}.name={spec.name!r} is not a registered reward (known: "
                              f"{sorted(REWARD_FACTORIES)}) nor a 'file.py:function' / 'module:function' reference")
        factory = found
    try:
        return factory(**spec.args)
    except TypeError as err:
        raise RewardError(f"{where}.args do not fit reward {spec.name!r}: {err}") from err


def _load_target(reference: str, where: str) -> Any:
    location, _, attribute = reference.rpartition(":")
    if location.endswith(".py") or "/" in location:
        path = Path(location).expanduser()
        if not path.is_file():
            raise RewardError(f"{where}.name={reference!r}: file {path} not found")
        module_name = f"posttrain_user_reward_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as err:
            raise RewardError(f"{where}.name={reference!r}: importing {path} failed: {err!r}") from err
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as err:
            raise RewardError(f"{where}.name={reference!r}: cannot import module {location!r}: {err}") from err
    if not hasattr(module, attribute):
        raise RewardError(f"{where}.name={reference!r}: {location} has no attribute {attribute!r}")
    return getattr(module, attribute)


def _keyword_filter(fn: Callable[..., Any]) -> Callable[[str], bool]:
    """Which optional context keywords ``fn`` can take."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return lambda name: False
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return lambda name: True
    names = {p.name for p in parameters}
    return names.__contains__


class RewardSet:
    """Scores completions with every configured reward and sums them with their weights."""

    def __init__(self, specs: Sequence[RewardConfig]) -> None:
        self.terms = []
        for index, (spec, label) in enumerate(zip(specs, reward_labels(specs))):
            fn = build_reward(spec, f"rewards[{index}]")
            self.terms.append(_Term(label, fn, spec, _keyword_filter(fn)))

    def score(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
              completion_ids: Sequence[Sequence[int]] | None = None,
              rows: Sequence[dict[str, Any]] | None = None) -> ScoredBatch:
        context = {name: value for name, value in (("completion_ids", completion_ids), ("rows", rows))
                   if value is not None}
        totals = torch.zeros(len(completions), dtype=torch.float32)
        components, errors, seconds = {}, {}, {}
        for term in self.terms:
            started = time.perf_counter()
            values, failed = self._score_term(term, prompts, completions, answers, context)
            seconds[term.name] = time.perf_counter() - started
            components[term.name] = values
            errors[term.name] = failed
            totals += term.spec.weight * values
        return ScoredBatch(totals, components, errors, seconds)

    def score_rollout(self, examples: Sequence[Example], batch: RolloutBatch) -> ScoredBatch:
        """Score a rollout of ``len(batch) // len(examples)`` consecutive samples per example, giving each
        reward the example's prompt, reference answer and row and the response's token ids."""
        per_example = len(batch) // len(examples)
        expanded = [e for e in examples for _ in range(per_example)]
        completion_ids = [row[mask.bool()].tolist() for row, mask in zip(batch.response_ids, batch.response_mask)]
        return self.score([e.prompt for e in expanded], batch.completions, [e.answer for e in expanded],
                          completion_ids, [e.fields for e in expanded])

    def _call(self, term: _Term, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
              context: dict[str, Sequence[Any]]) -> list[float]:
        accepted = {name: value for name, value in context.items() if term.accepts(name)}
        return _checked(term, term.fn(prompts, completions, answers, **accepted), len(completions))

    def _score_term(self, term: _Term, prompts: Sequence[str], completions: Sequence[str],
                    answers: Sequence[str], context: dict[str, Sequence[Any]]) -> tuple[torch.Tensor, int]:
        try:
            return torch.tensor(self._call(term, prompts, completions, answers, context), dtype=torch.float32), 0
        except Exception as err:
            if term.spec.on_error == "fail":
                raise RewardError(f"reward {term.name!r} failed: {err!r} (set on_error: score_failed to continue)") from err
        values, failed = [], 0
        for i in range(len(completions)):
            try:
                one = {name: [value[i]] for name, value in context.items()}
                values.append(self._call(term, [prompts[i]], [completions[i]], [answers[i]], one)[0])
            except Exception as err:  # scored as failed, counted, and logged once per sample
                failed += 1
                logger.warning("reward %r failed on a sample and scored it %s: %r", term.name,
                               term.spec.failed_score, err)
                values.append(term.spec.failed_score)
        return torch.tensor(values, dtype=torch.float32), failed


def _checked(term: _Term, values: Any, expected: int) -> list[float]:
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"reward {term.name!r} must return a sequence of numbers; got {type(values).__name__}") from err
    if len(values) != expected:
        raise ValueError(f"reward {term.name!r} returned {len(values)} scores for {expected} completions")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"reward {term.name!r} returned a non-finite score")
    return values
