"""Typed recipes: schema, YAML loading, overrides and validation errors."""

from posttrain.config.loading import ConfigError, apply_override, load_recipe, recipe_to_yaml, validate_recipe
from posttrain.config.schema import (
    AlgorithmConfig,
    DataConfig,
    LoggingConfig,
    LoraConfig,
    ModelConfig,
    ReasoningGymConfig,
    Recipe,
    RewardConfig,
    RolloutConfig,
    TaskConfig,
    TinyModelConfig,
    TrainerConfig,
)

__all__ = [
    "AlgorithmConfig",
    "ConfigError",
    "DataConfig",
    "LoggingConfig",
    "LoraConfig",
    "ModelConfig",
    "Recipe",
    "RewardConfig",
    "RolloutConfig",
    "ReasoningGymConfig",
    "TaskConfig",
    "TinyModelConfig",
    "TrainerConfig",
    "apply_override",
    "load_recipe",
    "recipe_to_yaml",
    "validate_recipe",
]
