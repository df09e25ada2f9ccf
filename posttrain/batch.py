"""The one container that moves through an RL step; each stage fills its fields, none recomputes them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch


@dataclass
class RolloutBatch:
    """B sequences: a left-padded prompt block followed by a right-padded response block.

    ``prompt_ids``/``prompt_mask`` are [B, P]; ``response_ids``/``response_mask`` and
    every per-token field are [B, T]. ``response_mask`` covers generated tokens up to and
    including EOS; ``finished`` [B] tells which responses ended with EOS (the others hit
    the token limit). Per-sample fields are lists or 1-D tensors of length B.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    sampling_logp: torch.Tensor
    group_ids: list[int]
    completions: list[str]
    finished: torch.Tensor
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    metadata: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=-1)

    def select(self, indices: torch.Tensor | list[int]) -> RolloutBatch:
        """The sub-batch of the given rows (tensors, lists and metadata alike)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        picked: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                picked[f.name] = value[index]
            elif isinstance(value, list):
                picked[f.name] = [value[i] for i in index.tolist()]
            elif isinstance(value, dict):
                picked[f.name] = {k: [v[i] for i in index.tolist()] for k, v in value.items()}
        return replace(self, **picked)

    def to(self, device: torch.device) -> RolloutBatch:
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)
