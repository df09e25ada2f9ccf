"""Tiny causal LMs built from a config, for tests, the quickstart and laptops."""

from __future__ import annotations

from typing import Literal

import torch
from transformers import LlamaConfig, PreTrainedModel, PreTrainedTokenizerBase, Qwen2Config

from posttrain.config.schema import TinyModelConfig
from posttrain.models.tokenizer import build_byte_tokenizer


def build_tiny_model(spec: TinyModelConfig, head: Literal["causal_lm", "reward", "value"] = "causal_lm",
                     num_labels: int = 1) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A randomly initialised model (deterministic in ``spec.seed``) and its byte tokenizer;
    ``head="reward"`` puts a one-logit sequence-classification head on the same backbone,
    ``head="value"`` a per-token head with ``num_labels`` outputs (a critic)."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    tokenizer = build_byte_tokenizer()
    config_cls = Qwen2Config if spec.architecture == "qwen2" else LlamaConfig
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        if head == "reward":
            config.num_labels = 1
            model = AutoModelForSequenceClassification.from_config(config)
        elif head == "value":
            config.num_labels = num_labels
            model = AutoModelForTokenClassification.from_config(config)
        else:
            model = AutoModelForCausalLM.from_config(config)
    finally:
        torch.random.set_rng_state(generator_state)
    if model.can_generate():
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer
