"""A trained reward model as a reward: prompt + completion → one logit, scored in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posttrain.config.schema import ModelConfig
from posttrain.models.loading import load_tokenizer
from posttrain.models.reward_model import load_reward_model, score_texts
from posttrain.rewards.base import register_reward


@register_reward("reward_model")
class RewardModelReward:
    """Scores with a Bradley-Terry reward model saved in HF format (``path``: its folder, or a
    run folder meaning the newest complete checkpoint). It runs on its own ``device``
    (``auto``: CUDA when present, else CPU; or e.g. ``cuda:1``), in ``batch_size`` chunks, in
    ``dtype``, without gradients. ``scale`` and ``shift`` map the logit: ``scale·r + shift``."""

    def __init__(self, path: str, device: str = "auto", dtype: str = "float32", batch_size: int = 64,
                 scale: float = 1.0, shift: float = 0.0) -> None:
        spec = ModelConfig(path=path, device=device, dtype=dtype)
        self.tokenizer = load_tokenizer(spec)
        self.model = load_reward_model(spec).eval()
        self.model.requires_grad_(False)
        self.batch_size, self.scale, self.shift = batch_size, scale, shift

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 **_: Any) -> list[float]:
        texts = [p + c for p, c in zip(prompts, completions)]
        return (self.scale * score_texts(self.model, self.tokenizer, texts, self.batch_size) + self.shift).tolist()
