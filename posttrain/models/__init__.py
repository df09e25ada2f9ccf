"""Models and tokenizers: loading, tiny models for tests, device placement."""

from posttrain.models.loading import (
    ModelLoadError,
    load_causal_lm,
    load_policy,
    load_tokenizer,
    resolve_device,
)
from posttrain.models.tiny import build_tiny_model
from posttrain.models.tokenizer import build_byte_tokenizer

__all__ = [
    "ModelLoadError",
    "build_byte_tokenizer",
    "build_tiny_model",
    "load_causal_lm",
    "load_policy",
    "load_tokenizer",
    "resolve_device",
]
