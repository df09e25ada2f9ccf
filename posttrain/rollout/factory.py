"""Building the engine a recipe names."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.config.schema import RolloutConfig
from posttrain.rollout.base import RolloutEngine
from posttrain.rollout.hf import HFRolloutEngine


def build_engine(spec: RolloutConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> RolloutEngine:
    if spec.engine == "hf":
        return HFRolloutEngine(model, tokenizer, batch_size=spec.batch_size)
    raise ValueError(f"rollout.engine={spec.engine!r} is not available")
