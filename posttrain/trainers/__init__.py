"""Trainers: one loop per family, chosen by the algorithm preset's family."""

from __future__ import annotations

from posttrain.config.schema import Recipe
from posttrain.trainers.base import RunResult, Trainer
from posttrain.trainers.online import OnlineTrainer
from posttrain.trainers.reward_model import RewardModelTrainer
from posttrain.trainers.sft import SFTTrainer

TRAINERS: dict[str, type[Trainer]] = {"online": OnlineTrainer, "sft": SFTTrainer, "reward_model": RewardModelTrainer}


def build_trainer(recipe: Recipe) -> Trainer:
    return TRAINERS[recipe.algorithm.family](recipe)


def train(recipe: Recipe) -> RunResult:
    return build_trainer(recipe).run()


__all__ = ["TRAINERS", "OnlineTrainer", "RunResult", "SFTTrainer", "Trainer", "build_trainer", "train"]
