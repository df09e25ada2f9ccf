"""A decoding method as data (``DecodeSpec``) and the engine that runs it over a base model, shared by
``posttrain decode`` and ``posttrain eval``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.config.loading import ConfigError
from posttrain.config.schema import RewardConfig
from posttrain.decoding.best_of_n import BestOfNEngine
from posttrain.decoding.guided import ValueGuidedEngine
from posttrain.decoding.value_head import load_value_guide
from posttrain.rewards import RewardSet
from posttrain.rollout.base import RolloutEngine

Method = Literal["base", "vas", "best-of-n"]
METHODS: tuple[Method, ...] = ("base", "vas", "best-of-n")


@dataclass(frozen=True)
class DecodeSpec:
    method: Method = "base"
    value_models: tuple[tuple[str, float], ...] = ()  # (folder, β) of each guiding value model
    top_k: int = 10
    n: int = 4
    rewards: tuple[RewardConfig, ...] = field(default_factory=tuple)  # best-of-N's scorer

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"decoding method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.method == "vas" and not self.value_models:
            raise ConfigError("--method vas needs at least one --value-model")
        if self.method == "best-of-n" and not self.rewards:
            raise ConfigError("--method best-of-n needs a scorer: --reward-model PATH or --reward NAME")

    @property
    def label(self) -> str:
        if self.method == "vas":
            guides = ", ".join(f"β={beta:g}" for _, beta in self.value_models)
            return f"vas({guides}, k={self.top_k})"
        if self.method == "best-of-n":
            return f"best-of-{self.n}({', '.join(r.label or r.name for r in self.rewards)})"
        return "base"


def build_decoder(spec: DecodeSpec, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                  base_engine: RolloutEngine, batch_size: int = 64,
                  answers: Mapping[tuple[int, ...], str] | None = None) -> RolloutEngine:
    """The engine that decodes with ``spec`` from ``model`` (``base_engine`` samples the base model)."""
    if spec.method == "vas":
        guides = [load_value_guide(path, beta, model.device) for path, beta in spec.value_models]
        return ValueGuidedEngine(model, tokenizer, guides, spec.top_k, batch_size)
    if spec.method == "best-of-n":
        return BestOfNEngine(base_engine, tokenizer, RewardSet(list(spec.rewards)), spec.n, answers)
    return base_engine


def add_decoding_arguments(parser: argparse.ArgumentParser, default: Method = "base") -> None:
    parser.add_argument("--method", choices=METHODS, default=default, help="decoding method")
    parser.add_argument("--value-model", action="append", default=[], metavar="PATH[=BETA]",
                        help="vas: a value model folder (or run folder), optionally with its own β; repeatable")
    parser.add_argument("--beta", type=float, default=2.0, help="vas: β of value models given without one")
    parser.add_argument("--top-k", type=int, default=10, help="vas: base candidates re-scored per step")
    parser.add_argument("--n", type=int, default=4, help="best-of-n: samples drawn per returned sample")
    parser.add_argument("--reward-model", help="best-of-n: score samples with this reward model")
    parser.add_argument("--reward", action="append", default=[], metavar="NAME",
                        help="best-of-n: score samples with this registered reward (e.g. exact_answer); repeatable")


def decode_spec_from_args(args: argparse.Namespace) -> DecodeSpec:
    value_models = []
    for text in args.value_model:
        path, _, beta = text.rpartition("=") if "=" in text else (text, "", "")
        try:
            value_models.append((path, float(beta) if beta else args.beta))
        except ValueError:
            raise ConfigError(f"--value-model {text!r}: the part after '=' must be a number (β)") from None
    rewards = [RewardConfig(name=name) for name in args.reward]
    if args.reward_model:
        rewards.append(RewardConfig(name="reward_model", args={"path": args.reward_model}))
    return DecodeSpec(args.method, tuple(value_models), args.top_k, args.n, tuple(rewards))
