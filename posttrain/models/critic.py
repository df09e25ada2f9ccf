"""The critic: a causal-LM backbone with a per-token value head (transformers' token-classification
model), so a saved critic reloads with ``AutoModelForTokenClassification.from_pretrained``.

The head has one output (a scalar value) or one logit per bin of a categorical value
distribution (HL-Gauss / two-hot, whose expectation is the value). It starts from the policy's
initial weights (a fresh head), from any causal LM, from a Bradley-Terry reward model (whose
one-logit score head becomes the scalar value head), or from a saved critic.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, PreTrainedModel

from posttrain.config.schema import CriticConfig, ModelConfig
from posttrain.models.loading import ModelLoadError, checked_source, torch_dtype
from posttrain.models.tiny import build_tiny_model

HEAD = "score"  # the token-classification head of every decoder family transformers ships
HEAD_CONFIG_KEY = "value_head"  # the head's kind and support, saved in config.json with the weights


def head_outputs(spec: CriticConfig) -> int:
    return 1 if spec.head == "scalar" else spec.num_bins


def load_critic(spec: CriticConfig, policy: ModelConfig, device: torch.device) -> PreTrainedModel:
    """The critic's initial weights: ``spec.path`` if set, else the policy's (``policy``)."""
    model = _load_weights(spec, policy, device)
    setattr(model.config, HEAD_CONFIG_KEY, {"head": spec.head, "num_bins": spec.num_bins, "v_min": spec.v_min,
                                            "v_max": spec.v_max})
    return without_dropout(model)


def without_dropout(model: PreTrainedModel) -> PreTrainedModel:
    """The model with every dropout off (and saved off). transformers' token-classification head
    defaults to dropout 0.1 before the value head, which makes the values a critic is trained on
    differ from those it produced for GAE, and makes them depend on the RNG stream."""
    model.config.classifier_dropout = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def _load_weights(spec: CriticConfig, policy: ModelConfig, device: torch.device) -> PreTrainedModel:
    outputs = head_outputs(spec)
    if spec.path is None and policy.tiny is not None:
        return build_tiny_model(policy.tiny, head="value", num_labels=outputs)[0].to(device)
    source_spec = policy.model_copy(update={"path": spec.path or policy.path, "tiny": None})
    source = checked_source(source_spec)
    saved = saved_head_shape(Path(source))
    if saved is not None and saved[0] != outputs:
        raise ModelLoadError(
            f"critic: the value head in {source} has shape {list(saved)} but critic.head={spec.head!r} needs "
            f"[{outputs}, {saved[1]}] ({'one value' if outputs == 1 else f'{outputs} bins'}); set critic.head / "
            "critic.num_bins to match the checkpoint, or start the critic from a model without a value head")
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            source, num_labels=outputs, dtype=torch_dtype(source_spec), revision=policy.revision if spec.path is None
            else None, trust_remote_code=policy.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"critic: cannot load a value model from {source}: {err}") from err
    return model.to(device)


def saved_head_shape(folder: Path) -> tuple[int, ...] | None:
    """Shape of the saved ``score`` head of a local checkpoint (critic or reward model), if it has one."""
    if not folder.is_dir():
        return None
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shard = json.loads(index.read_text())["weight_map"].get(f"{HEAD}.weight")
        files = [folder / shard] if shard else []
    else:
        files = [folder / "model.safetensors"]
    for file in files:
        if file.is_file():
            with safe_open(str(file), framework="pt") as tensors:
                if f"{HEAD}.weight" in tensors.keys():  # noqa: SIM118 (safe_open is not iterable)
                    return tuple(tensors.get_slice(f"{HEAD}.weight").get_shape())
    return None
