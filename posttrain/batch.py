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
    values: torch.Tensor | None = None  # [B, T] critic values at rollout time (critic family)
    returns: torch.Tensor | None = None  # [B, T] the critic's targets
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


def concat_batches(batches: list[RolloutBatch]) -> RolloutBatch:
    """Stack batches from several generation rounds into one.

    Prompt blocks are left-padded and response blocks right-padded to the widest batch
    (pad id 0, mask 0); group ids are offset so groups of different rounds never merge.
    """
    if not batches:
        raise ValueError("nothing to concatenate")
    prompt_width = max(b.prompt_ids.shape[1] for b in batches)
    response_width = max(b.response_ids.shape[1] for b in batches)
    merged: dict[str, Any] = {}
    offset = 0
    group_ids: list[int] = []
    for b in batches:
        group_ids.extend(g + offset for g in b.group_ids)
        offset = max(group_ids) + 1 if group_ids else offset
    for f in fields(RolloutBatch):
        values = [getattr(b, f.name) for b in batches]
        if f.name == "group_ids":
            merged[f.name] = group_ids
        elif any(v is None for v in values):
            if not all(v is None for v in values):
                raise ValueError(f"field {f.name!r} is set in some batches and not in others")
            merged[f.name] = None
        elif isinstance(values[0], torch.Tensor):
            if values[0].ndim == 2:
                width = prompt_width if f.name.startswith("prompt") else response_width
                left = f.name.startswith("prompt")
                values = [_pad_columns(v, width, left) for v in values]
            merged[f.name] = torch.cat(values, dim=0)
        elif isinstance(values[0], list):
            merged[f.name] = [item for v in values for item in v]
        else:
            merged[f.name] = {k: [item for v in values for item in v[k]] for k in values[0]}
    return RolloutBatch(**merged)


def _pad_columns(tensor: torch.Tensor, width: int, left: bool) -> torch.Tensor:
    missing = width - tensor.shape[1]
    if missing == 0:
        return tensor
    pad = torch.zeros(tensor.shape[0], missing, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([pad, tensor] if left else [tensor, pad], dim=1)


def prompt_completion_batch(prompts: list[list[int]], completions: list[list[int]], pad: int,
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded prompts followed by right-padded completions, as the rollout engine lays them out:
    (input ids [B, P + C], attention mask [B, P + C], completion mask [B, C])."""
    p_width, c_width = max(map(len, prompts)), max(1, max(map(len, completions)))
    rows = len(prompts)
    ids = torch.full((rows, p_width + c_width), pad, dtype=torch.long)
    attention = torch.zeros_like(ids)
    completion_mask = torch.zeros((rows, c_width), dtype=torch.long)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        ids[row, p_width - len(p) : p_width] = torch.as_tensor(p, dtype=torch.long)
        ids[row, p_width : p_width + len(c)] = torch.as_tensor(c, dtype=torch.long)
        attention[row, p_width - len(p) : p_width + len(c)] = 1
        completion_mask[row, : len(c)] = 1
    return ids, attention, completion_mask
