"""Per-token log-probs (and entropies) of response tokens under a model."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from posttrain.batch import prompt_completion_batch


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` assigns them."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def response_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_width: int,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(response_t | prefix) for the last ``response_width`` positions, in float32.

    Logits are divided by ``temperature`` so the numbers match the distribution the
    responses were sampled from. The entropy is differentiable only with ``entropy_grad``
    (a bonus term needs it; a logged metric does not).
    """
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    logits = outputs.logits[:, -response_width - 1 : -1, :].float() / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, -response_width:]
    token_logp = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    return token_logp, entropy


def completion_logp_sums(
    model: PreTrainedModel,
    prompts: list[list[int]],
    completions: list[list[int]],
    pad: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_t log π(completion_t | prompt, completion_<t) per row ([B], float32) and completion lengths ([B])."""
    ids, attention, completion_mask = prompt_completion_batch(prompts, completions, pad)
    mask = completion_mask.to(device).float()
    token_logp, _ = response_logprobs(model, ids.to(device), attention.to(device), mask.shape[1])
    return (token_logp * mask).sum(dim=-1), mask.sum(dim=-1)
