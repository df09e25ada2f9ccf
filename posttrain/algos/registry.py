"""Algorithms as named presets of orthogonal switches (DESIGN.md principle 1).

A preset fixes the family (which loop runs it) and the switch values that define the
algorithm; a recipe picks a preset by name and may override any switch. Adding an
algorithm means adding an entry here, never touching a training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["online", "sft"]


@dataclass(frozen=True)
class Preset:
    family: Family
    description: str
    switches: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "grpo": Preset(
        family="online",
        description="GRPO: group-normalised outcome advantages, clipped token-level surrogate, "
        "per-sequence mean aggregation (DeepSeekMath).",
        switches={
            "advantage_estimator": "grpo",
            "norm_adv_by_std": True,
            "loss_agg_mode": "seq-mean-token-mean",
            "clip_ratio_low": 0.2,
            "clip_ratio_high": 0.2,
        },
    ),
    "dr_grpo": Preset(
        family="online",
        description="Dr.GRPO: GRPO without the group-std division and with token sums over a constant.",
        switches={
            "advantage_estimator": "grpo",
            "norm_adv_by_std": False,
            "loss_agg_mode": "seq-mean-token-sum-norm",
            "clip_ratio_low": 0.2,
            "clip_ratio_high": 0.2,
        },
    ),
    "sft": Preset(
        family="sft",
        description="Supervised fine-tuning: token-mean negative log-likelihood of the completion.",
        switches={"loss_agg_mode": "token-mean"},
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(sorted(PRESETS))}") from None
