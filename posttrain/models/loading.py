"""Loading the policy (and its frozen reference) from a local folder, a hub id or a tiny spec."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from posttrain.config.schema import ModelConfig
from posttrain.models.tiny import build_tiny_model

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(RuntimeError):
    """The model or tokenizer named by the recipe cannot be loaded; the message says which and why."""


def resolve_device(spec: ModelConfig) -> torch.device:
    if spec.device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"model.device={spec.device} but no CUDA device is available")
    if spec.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec.device)


def looks_local(path: str) -> bool:
    """A path that can only mean a folder on disk (a hub id is 'name' or 'org/name')."""
    return path.startswith((".", "/", "~")) or path.count("/") > 1 or os.sep != "/" and os.sep in path


def load_tokenizer(spec: ModelConfig) -> PreTrainedTokenizerBase:
    if spec.tiny is not None:
        return build_tiny_model(spec.tiny)[1]
    source = checked_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"model.path={spec.path!r}: cannot load a tokenizer: {err}") from err
    if len(tokenizer) < 2 or not tokenizer("1 a", add_special_tokens=False)["input_ids"]:
        # transformers builds an empty tokenizer for a folder that only holds weights and config
        raise ModelLoadError(f"model.path={spec.path!r}: no usable tokenizer (vocabulary of {len(tokenizer)}); "
                             "save the tokenizer files (e.g. tokenizer.json) beside the weights")
    return _with_padding(tokenizer)


def load_causal_lm(spec: ModelConfig, device: torch.device | None = None) -> PreTrainedModel:
    """The policy's initial weights, on ``device``; the same call gives an identical reference model."""
    device = device or resolve_device(spec)
    if spec.tiny is not None:
        model = build_tiny_model(spec.tiny)[0]
        if spec.dtype in _DTYPES:
            model = model.to(_DTYPES[spec.dtype])
        return model.to(device)
    source = checked_source(spec)
    dtype = torch_dtype(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"model.path={spec.path!r}: cannot load a causal LM: {err}") from err
    return model.to(device)


def context_length(model: PreTrainedModel) -> int:
    """Tokens the model attends over; unbounded when its config does not say."""
    return getattr(model.config, "max_position_embeddings", None) or 10**9


def load_policy(spec: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = load_tokenizer(spec)
    model = load_causal_lm(spec)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def torch_dtype(spec: ModelConfig) -> torch.dtype | str:
    """What ``from_pretrained(dtype=...)`` gets: the recipe's dtype, or "auto" for the checkpoint's own."""
    return "auto" if spec.dtype == "auto" else _DTYPES[spec.dtype]


def checked_source(spec: ModelConfig) -> str:
    """The folder or hub id to load from; a local path that is missing or not a model is an error here."""
    assert spec.path is not None
    path = Path(spec.path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model.path={spec.path!r} is a file; expected a model folder")
        if not (path / "config.json").is_file():
            run_model = newest_run_model(path)
            if run_model is None:
                raise ModelLoadError(f"model.path={spec.path!r}: folder has no config.json "
                                     "(and is not a run folder with a complete checkpoint)")
            return str(run_model)
        return str(path)
    if looks_local(spec.path):
        raise ModelLoadError(f"model.path={spec.path!r}: folder not found")
    return spec.path


def newest_run_model(run_dir: Path) -> Path | None:
    """The model of a run folder's newest complete checkpoint, so a recipe can start from
    ``runs/sft`` instead of a step-numbered path."""
    from posttrain.trainers.checkpoint import MODEL_DIR, complete_checkpoints  # trainers import this module

    found = complete_checkpoints(run_dir)
    return found[-1] / MODEL_DIR if found else None


def _with_padding(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError("the tokenizer has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer
