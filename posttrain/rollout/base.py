"""What every generation engine provides; trainers only see this protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from transformers import PreTrainedModel

from posttrain.batch import RolloutBatch


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    greedy: bool = False


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], num_samples: int, sampling: SamplingParams
    ) -> RolloutBatch:
        """``num_samples`` responses per prompt, grouped: rows ``i*n … i*n+n−1`` share group id ``i``."""
        ...

    def sync_weights(self, model: PreTrainedModel) -> None:
        """Make the engine generate with ``model``'s current weights."""
        ...
