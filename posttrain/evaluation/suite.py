"""Evaluation suites as data: one YAML file under ``eval/`` per suite, validated like a recipe.

A suite names its data (the recipe's ``data`` section: a built-in task, a local file, a hub id or a
package-shipped dataset) and split, how prompts are written, how completions are scored (the
recipe's rewards: a sample is correct when its summed reward reaches ``correct_threshold``),
how answers are extracted for majority voting, the sampling settings and the metrics.

Two suite shapes: *generation* suites (accuracy, pass@k, maj@k, mean reward, win rate against a
``baseline`` model judged by the suite's rewards, e.g. a reward model) evaluate causal LMs;
*pair* suites (``pair_accuracy``) evaluate reward models on prompt/chosen/rejected rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from posttrain.config.loading import read_mapping, validate_as
from posttrain.config.schema import DataConfig, RewardConfig, Section

Metric = Literal["accuracy", "pass@k", "maj@k", "mean_reward", "win_rate", "pair_accuracy"]
#: metrics computed on a reward model's scores of given pairs; every other metric needs generations
PAIR_METRICS = frozenset({"pair_accuracy"})


class EvalSampling(Section):
    num_samples: int = Field(1, ge=1, description="Completions per prompt (n of pass@k and maj@k).")
    temperature: float = Field(
        0.0, ge=0, description="0 = greedy decoding (then num_samples must be 1); else the sampling temperature."
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(256, gt=0, description="Longest completion.")
    seed: int = Field(0, description="Seed of the sampling, so reruns give the same samples.")
    batch_size: int = Field(64, gt=0, description="Sequences per generate() call.")
    stop: list[str] = Field(
        [], description="Strings that end a completion: it is cut before the first one (e.g. 'Question:' for "
        "models that go on to invent the next problem)."
    )

    @model_validator(mode="after")
    def _greedy_is_single(self) -> EvalSampling:
        if self.temperature == 0 and self.num_samples > 1:
            raise ValueError("sampling.temperature=0 (greedy) gives identical samples; set num_samples=1 "
                             "or a temperature > 0")
        return self


class SuiteConfig(Section):
    name: str = Field(description="Name in the results table.")
    description: str = Field("", description="What the suite measures.")
    data: DataConfig = Field(description="Where the problems come from; data.split is the split evaluated.")
    prompt_template: str | None = Field(
        None, description="Python format string over the row's fields (e.g. 'Q: {question}\\nA:'); "
        "default the prompt field as is."
    )
    rewards: list[RewardConfig] = Field(
        default_factory=lambda: [RewardConfig()], description="How each completion is scored (summed)."
    )
    correct_threshold: float = Field(1.0, description="A sample counts as correct when its summed reward reaches this.")
    vote: Literal["exact", "first_number", "last_number"] = Field(
        "exact", description="Answer extraction for maj@k: the whole stripped completion, or its first/last number."
    )
    metrics: list[Metric] = Field(
        ["accuracy"], description="accuracy, pass@k, maj@k, mean_reward, win_rate (needs baseline) — or "
        "pair_accuracy alone, for reward models."
    )
    baseline: str | None = Field(
        None, description="Model folder or hub id that win_rate compares against: it answers the same prompts "
        "with the same sampling; per sample, a higher summed reward wins and a tie counts half."
    )
    k: list[int] = Field([1], description="The k values of pass@k and maj@k.")
    sampling: EvalSampling = Field(default_factory=EvalSampling, description="How completions are generated.")
    limit: int | None = Field(None, gt=0, description="Evaluate only the first N problems.")

    @property
    def scores_pairs(self) -> bool:
        """Whether the suite evaluates reward models on given pairs rather than generations."""
        return bool(PAIR_METRICS & set(self.metrics))

    @model_validator(mode="after")
    def _shape_is_consistent(self) -> SuiteConfig:
        if self.scores_pairs and set(self.metrics) - PAIR_METRICS:
            raise ValueError(f"metrics: {sorted(PAIR_METRICS)} score reward models on given pairs and cannot be "
                             f"combined with generation metrics {sorted(set(self.metrics) - PAIR_METRICS)}")
        if "win_rate" in self.metrics and self.baseline is None:
            raise ValueError("metrics: win_rate needs baseline (the model it compares against)")
        return self

    @model_validator(mode="after")
    def _k_fits(self) -> SuiteConfig:
        needs_k = {"pass@k", "maj@k"} & set(self.metrics)
        too_big = [k for k in self.k if k > self.sampling.num_samples or k < 1]
        if needs_k and too_big:
            raise ValueError(f"k={too_big} needs 1 <= k <= sampling.num_samples={self.sampling.num_samples}")
        return self


def load_suite(path: str | Path, overrides: list[str] | None = None) -> SuiteConfig:
    """A suite file validated against :class:`SuiteConfig`; errors name the file and the field."""
    return validate_as(SuiteConfig, read_mapping(path, overrides or [], "suite"), str(path))
