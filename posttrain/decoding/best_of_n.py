"""Best-of-N (ALGORITHMS.md §9.3) as a rollout engine: N samples from the base engine per returned
sample, scored by the configured rewards (a reward model, or a rule reward with the reference
answers), the best kept (ties go to the earliest sample)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.algos import best_of_n_index, best_of_n_kl_bound
from posttrain.batch import RolloutBatch
from posttrain.decoding.guided import DecodingCost
from posttrain.rewards import RewardSet
from posttrain.rollout.base import RolloutEngine, SamplingParams

MODEL_REWARDS = {"reward_model"}


class BestOfNEngine:
    """``answers`` maps a prompt's token ids to its reference answer, for rewards that check one;
    a reward model needs none."""

    def __init__(self, base: RolloutEngine, tokenizer: PreTrainedTokenizerBase, rewards: RewardSet, n: int,
                 answers: Mapping[tuple[int, ...], str] | None = None) -> None:
        if n < 1:
            raise ValueError(f"best-of-N needs N >= 1; got {n}")
        self.base, self.tokenizer, self.rewards, self.n = base, tokenizer, rewards, n
        self.answers = dict(answers or {})
        self.scores_with_model = any(term.spec.name in MODEL_REWARDS for term in rewards.terms)
        self.cost = DecodingCost()

    @property
    def kl_bound(self) -> float:
        """log N − (N − 1)/N: how far (in KL) best-of-N can move from the base model."""
        return best_of_n_kl_bound(self.n)

    def sync_weights(self, model: PreTrainedModel) -> None:
        self.base.sync_weights(model)

    def generate(self, prompts: Sequence[Sequence[int]], num_samples: int, sampling: SamplingParams) -> RolloutBatch:
        n = self.n
        drawn = self.base.generate(prompts, num_samples * n, sampling)
        prompt_texts = self.tokenizer.batch_decode([list(p) for p in prompts], skip_special_tokens=True)
        per_row = num_samples * n
        answers = [self.answers.get(tuple(p), "") for p in prompts]
        scored = self.rewards.score(
            [prompt_texts[i // per_row] for i in range(len(drawn))], drawn.completions,
            [answers[i // per_row] for i in range(len(drawn))],
            [row[mask.bool()].tolist() for row, mask in zip(drawn.response_ids, drawn.response_mask)])
        scores = scored.totals.view(-1, n)  # [prompts × num_samples, N]: consecutive draws compete
        best = best_of_n_index(scores)
        chosen = (torch.arange(len(best)) * n + best).tolist()
        batch = drawn.select(chosen)
        batch.metadata["best_of_n_score"] = scores.gather(-1, best.unsqueeze(-1)).squeeze(-1).tolist()
        batch.metadata["best_of_n_scores"] = scores.tolist()
        self.cost.base_token_evals += drawn.response_ids.numel()
        if self.scores_with_model:
            self.cost.scorer_token_evals += int(drawn.attention_mask.sum())
        self.cost.tokens += int(batch.response_mask.sum())
        return batch
