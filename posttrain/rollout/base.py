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
    #: sampling seed of row 0; the engine samples a chunk starting at row r under ``seed + r``, so a
    #: prompt's samples do not depend on which process or chunk generates it (None: the global RNG)
    seed: int | None = None


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], num_samples: int, sampling: SamplingParams
    ) -> RolloutBatch:
        """``num_samples`` responses per prompt, grouped: rows ``i*n … i*n+n−1`` share group id ``i``."""
        ...

    def sync_weights(self, model: PreTrainedModel) -> None:
        """Make the engine generate with ``model``'s current weights."""
        ...
