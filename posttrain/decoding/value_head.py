"""Reading a value model as V(s): the head output at a token's own position is the value of the
state that ends with that token, so V(s ⊕ a) is read where ``a`` sits.

A value model is the critic's model class (a causal-LM backbone with a per-token head,
``AutoModelForTokenClassification``); its head kind travels in the saved config, so a folder
alone says how to turn head outputs into values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, PreTrainedModel

from posttrain.algos import categorical_support, categorical_value
from posttrain.config.schema import ModelConfig
from posttrain.models.critic import HEAD_CONFIG_KEY
from posttrain.models.loading import ModelLoadError, checked_source


def head_support(model: PreTrainedModel, where: str) -> torch.Tensor | None:
    """The categorical support of a value model's head, or None for a scalar head."""
    head = getattr(model.config, HEAD_CONFIG_KEY, None)
    outputs = model.config.num_labels
    if head is None:
        if outputs == 1:
            return None
        raise ModelLoadError(f"{where}: the value head has {outputs} outputs but the config says nothing of its "
                             f"support ({HEAD_CONFIG_KEY!r}); it was not saved by posttrain's value-model trainer")
    if head["head"] == "scalar":
        return None
    return categorical_support(head["head"], head["v_min"], head["v_max"], head["num_bins"])


def values_from_logits(logits: torch.Tensor, support: torch.Tensor | None) -> torch.Tensor:
    """[..., outputs] head outputs → [...] values (float32)."""
    logits = logits.float()
    return logits[..., 0] if support is None else categorical_value(logits, support.to(logits.device))


@dataclass
class ValueGuide:
    """One value model steering decoding with its own strength β."""

    model: PreTrainedModel
    beta: float
    support: torch.Tensor | None
    name: str = "value"


def load_value_guide(path: str, beta: float, device: torch.device | str = "cpu") -> ValueGuide:
    """A saved value model (its folder, or a run folder meaning its newest checkpoint), frozen."""
    source = checked_source(ModelConfig(path=path))
    try:
        model = AutoModelForTokenClassification.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"value model {path}: cannot load a per-token value model: {err}") from err
    model = model.to(device).eval()
    model.requires_grad_(False)
    return ValueGuide(model, beta, head_support(model, path), name=Path(path).name)


def state_values(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int,
                 support: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """V(s ⊕ y_≤t) for each of the last ``width`` tokens — read at the token's own position, so the
    last one (EOS included) is the value of the finished response — and the raw head outputs
    [B, width, outputs] in float32."""
    from posttrain.trainers.logprobs import position_ids_from_mask

    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids_from_mask(attention_mask), use_cache=False).logits
    logits = logits[:, -width:, :].float()
    return values_from_logits(logits, support), logits
