"""Trainers: one loop per family, chosen by the algorithm preset's family."""

from __future__ import annotations

from posttrain.config.schema import Recipe
from posttrain.trainers.base import RunResult, Trainer
from posttrain.trainers.online import OnlineTrainer
from posttrain.trainers.preference import PreferenceTrainer
from posttrain.trainers.qrpo import QRPOTrainer
from posttrain.trainers.reward_model import RewardModelTrainer
from posttrain.trainers.sft import SFTTrainer
from posttrain.trainers.value_model import ValueModelTrainer

TRAINERS: dict[str, type[Trainer]] = {"online": OnlineTrainer, "sft": SFTTrainer, "reward_model": RewardModelTrainer,
                                      "preference": PreferenceTrainer, "qrpo": QRPOTrainer,
                                      "value_model": ValueModelTrainer}


def build_trainer(recipe: Recipe) -> Trainer:
    return TRAINERS[recipe.algorithm.family](recipe)


def train(recipe: Recipe) -> RunResult:
    """Run a recipe to the end; a Pre-DPO recipe (``algorithm.guide``) runs its two stages."""
    if recipe.algorithm.guide != "none":
        from posttrain.trainers.pre_dpo import run_pre_dpo

        return run_pre_dpo(recipe)
    return build_trainer(recipe).run()


__all__ = ["TRAINERS", "OnlineTrainer", "PreferenceTrainer", "QRPOTrainer", "RunResult", "SFTTrainer", "Trainer", "ValueModelTrainer",
           "build_trainer", "train"]
