"""Building the engine a recipe names."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.config.schema import RolloutConfig
from posttrain.rollout.base import RolloutEngine
from posttrain.rollout.hf import HFRolloutEngine


def build_engine(spec: RolloutConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 synced: bool = False, seed: int = 0) -> RolloutEngine:
    """The recipe's engine; ``synced`` when the policy is ZeRO-3-sharded across a launched world."""
    if spec.engine == "hf":
        return HFRolloutEngine(model, tokenizer, batch_size=spec.batch_size, synced=synced)
    if spec.engine == "vllm":
        from posttrain.models.loading import context_length
        from posttrain.rollout.vllm_engine import VLLMRolloutEngine

        return VLLMRolloutEngine(model, tokenizer, spec.vllm, spec.vllm.max_model_len or context_length(model), seed)
    raise ValueError(f"rollout.engine={spec.engine!r} is not available")
