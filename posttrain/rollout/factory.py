"""Building the engine a recipe names."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.config.schema import RolloutConfig
from posttrain.rollout.base import RolloutEngine
from posttrain.rollout.hf import HFRolloutEngine


def build_engine(spec: RolloutConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 synced: bool = False, seed: int = 0, parallel: Any = None) -> RolloutEngine:
    """The recipe's engine; ``synced`` when the policy is ZeRO-3-sharded across a launched world,
    ``parallel`` the trainer's :class:`~posttrain.trainers.parallel.Parallel` (None: one process)."""
    if spec.engine == "hf":
        return HFRolloutEngine(model, tokenizer, batch_size=spec.batch_size, synced=synced)
    if spec.engine == "vllm":
        from posttrain.models.loading import context_length
        from posttrain.rollout.vllm_engine import VLLMRolloutEngine

        return VLLMRolloutEngine(model, tokenizer, spec.vllm, spec.vllm.max_model_len or context_length(model), seed,
                                 parallel)
    if spec.engine == "vllm-server":
        from posttrain.rollout.vllm_server import VLLMServerEngine

        return VLLMServerEngine(model, tokenizer, spec.vllm_server, parallel)
    raise ValueError(f"rollout.engine={spec.engine!r} is not available")
