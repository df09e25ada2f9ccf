"""Rewards that delegate to a task library's own scorer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from posttrain.rewards.base import register_reward

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
Extraction = Literal["answer_tag", "last_line", "full"]


def extract_final(completion: str, how: Extraction) -> str:
    """The part of a completion a scorer should see: the last ``<answer>…</answer>`` (the
    whole completion if there is none), the last non-empty line, or everything."""
    if how == "answer_tag":
        tagged = _ANSWER_TAG.findall(completion)
        return tagged[-1].strip() if tagged else completion.strip()
    if how == "last_line":
        lines = [line for line in completion.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""
    return completion


@register_reward("reasoning_gym")
class ReasoningGymReward:
    """Scores with the scorer of the dataset that generated each sample (``data.reasoning_gym``):
    ``score_answer(extracted completion, entry)``, a number in [0, 1]. Rows without an
    ``entry`` (data not from reasoning-gym) are an error."""

    def __init__(self, extract: Extraction = "answer_tag") -> None:
        if extract not in ("answer_tag", "last_line", "full"):
            raise TypeError(f"extract must be answer_tag, last_line or full, not {extract!r}")
        self.extract = extract
        self._scorers: dict[str, Any] = {}

    def _scorer(self, dataset: str) -> Any:
        if dataset not in self._scorers:
            import reasoning_gym

            self._scorers[dataset] = reasoning_gym.get_score_answer_fn(dataset)
        return self._scorers[dataset]

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 rows: Sequence[dict[str, Any]] | None = None, **_: Any) -> list[float]:
        if rows is None or any("entry" not in row for row in rows):
            raise ValueError("the reasoning_gym reward needs data.reasoning_gym rows (each holds its generator entry)")
        scores = []
        for completion, row in zip(completions, rows):
            entry = row["entry"]
            scorer = self._scorer(entry["metadata"]["source_dataset"])
            scores.append(float(scorer(answer=extract_final(completion, self.extract), entry=entry)))
        return scores
