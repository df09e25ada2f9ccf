"""Bradley-Terry reward models: a sequence-classification head with one logit on an LM backbone.

Training and scoring encode text the same way (:func:`encode_texts`: the rendered prompt
followed by the completion, right-padded), so a reward model scores RL samples exactly as
it saw its training pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from posttrain.config.schema import ModelConfig
from posttrain.models.loading import (
    ModelLoadError,
    checked_source,
    context_length,
    resolve_device,
    torch_dtype,
)
from posttrain.models.tiny import build_tiny_model


def load_reward_model(spec: ModelConfig, device: torch.device | None = None) -> PreTrainedModel:
    """A one-logit classifier from ``spec``: a fresh tiny one, a saved reward model, or a causal-LM
    checkpoint whose backbone gets a new (randomly initialised) score head."""
    device = device or resolve_device(spec)
    if spec.tiny is not None:
        return build_tiny_model(spec.tiny, head="reward")[0].to(device)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            checked_source(spec), num_labels=1, dtype=torch_dtype(spec), revision=spec.revision,
            trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"model.path={spec.path!r}: cannot load a sequence-classification model: {err}") from err
    if model.config.pad_token_id is None:
        raise ModelLoadError(f"model.path={spec.path!r}: the config has no pad_token_id; the score head needs it "
                             "to find each sequence's last token")
    return model.to(device)


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask; texts longer than ``max_length`` tokens keep their start."""
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    width = max(1, max(map(len, encoded)))
    ids = torch.full((len(texts), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return ids, mask


def reward_logits(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One scalar per row ([B]), read at each row's last token."""
    return model(input_ids=ids, attention_mask=mask).logits[:, 0].float()


@torch.no_grad()
def score_texts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                batch_size: int = 64) -> torch.Tensor:
    """Reward of every text, in batches, on the model's device; returned on the CPU."""
    device = next(model.parameters()).device
    limit = context_length(model)
    scores = []
    for start in range(0, len(texts), batch_size):
        ids, mask = encode_texts(tokenizer, texts[start : start + batch_size], limit)
        scores.append(reward_logits(model, ids.to(device), mask.to(device)).cpu())
    return torch.cat(scores) if scores else torch.zeros(0)
