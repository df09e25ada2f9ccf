"""Generation with transformers ``generate`` on the policy itself: the always-available engine."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.batch import RolloutBatch
from posttrain.rollout.base import SamplingParams


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def response_mask_until_eos(response_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """1 for tokens up to and including the first EOS of each row, 0 after it."""
    is_eos = torch.isin(response_ids, torch.as_tensor(list(eos_ids), device=response_ids.device))
    eos_seen_before = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) > 0
    return (~eos_seen_before).long()


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids that end a response: the model's generation config, else the tokenizer's eos."""
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    return [eos] if isinstance(eos, int) else list(eos)


def rollout_batch(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, responses: Sequence[torch.Tensor],
                  logps: Sequence[torch.Tensor], group_ids: list[int], eos_ids: Sequence[int], pad_id: int,
                  tokenizer: PreTrainedTokenizerBase) -> RolloutBatch:
    """The batch of responses generated chunk by chunk (``responses``/``logps``: [rows, steps] each):
    right-padded to one width, masked after the first EOS, decoded."""
    width = max(r.shape[1] for r in responses)
    response_ids = torch.cat([pad_right(r, width, pad_id) for r in responses])
    sampling_logp = torch.cat([pad_right(lp, width, 0.0) for lp in logps])
    response_mask = response_mask_until_eos(response_ids, eos_ids)
    is_eos = torch.isin(response_ids, torch.as_tensor(list(eos_ids))) & response_mask.bool()
    completions = tokenizer.batch_decode([ids[mask.bool()] for ids, mask in zip(response_ids, response_mask)],
                                         skip_special_tokens=True)
    return RolloutBatch(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                        response_mask=response_mask, sampling_logp=sampling_logp * response_mask,
                        group_ids=group_ids, completions=completions, finished=is_eos.any(dim=-1))


class HFRolloutEngine:
    """Batched ``generate`` with left padding, returning sampling log-probs of the chosen tokens.

    ``synced`` keeps the processes of a ZeRO-3 world stepping together (each forward gathers the
    sharded parameters from all of them) until every process's rows have finished."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 512,
                 synced: bool = False) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.synced = synced
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id

    def sync_weights(self, model: PreTrainedModel) -> None:
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], num_samples: int, sampling: SamplingParams) -> RolloutBatch:
        expanded = [list(p) for p in prompts for _ in range(num_samples)]
        group_ids = [i for i in range(len(prompts)) for _ in range(num_samples)]
        prompt_ids, prompt_mask = left_pad(expanded, self.pad_id)
        chunks = [self._generate_chunk(prompt_ids[s : s + self.batch_size], prompt_mask[s : s + self.batch_size],
                                       sampling, None if sampling.seed is None else sampling.seed + s)
                  for s in range(0, len(expanded), self.batch_size)]
        return rollout_batch(prompt_ids, prompt_mask, [c[0] for c in chunks], [c[1] for c in chunks], group_ids,
                             self.eos_ids, self.pad_id, self.tokenizer)

    def _generate_chunk(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, sampling: SamplingParams, seed: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.model.device
        prompt_ids, prompt_mask = drop_pad_columns(prompt_ids, prompt_mask)
        was_training = self.model.training
        self.model.eval()
        options = {"do_sample": False} if sampling.greedy else {
            "do_sample": True,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
        }
        rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=seed is not None)
        try:
            with rng:
                if seed is not None:
                    torch.manual_seed(seed)
                out = self.model.generate(
                    input_ids=prompt_ids.to(device),
                    attention_mask=prompt_mask.to(device),
                    max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=self.pad_id,
                    eos_token_id=self.eos_ids,
                    return_dict_in_generate=True,
                    output_scores=True,
                    synced_gpus=self.synced,
                    **options,
                )
        finally:
            self.model.train(was_training)
        response = out.sequences[:, prompt_ids.shape[1] :].cpu()
        scores = torch.stack(out.scores, dim=1).float().cpu()
        logp = torch.log_softmax(scores, dim=-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
        return response, torch.nan_to_num(logp, neginf=0.0)


def drop_pad_columns(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded rows without the leading columns that are padding in every row, so a chunk's
    computation does not depend on how long the prompts of other chunks were."""
    filled = (mask.sum(dim=0) > 0).nonzero()
    start = int(filled[0]) if len(filled) else 0
    return ids[:, start:], mask[:, start:]


def pad_right(tensor: torch.Tensor, width: int, value: float) -> torch.Tensor:
    if tensor.shape[1] == width:
        return tensor
    pad = torch.full((tensor.shape[0], width - tensor.shape[1]), value, dtype=tensor.dtype)
    return torch.cat([tensor, pad], dim=1)
