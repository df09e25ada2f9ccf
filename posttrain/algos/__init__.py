"""Pure math of post-training: advantages, losses, KL estimators, aggregation, presets."""

from posttrain.algos.advantages import broadcast_to_tokens, grpo_advantages, zero_advantage_group_fraction
from posttrain.algos.aggregation import LOSS_AGG_MODES, aggregate_loss, masked_mean
from posttrain.algos.kl import KL_ESTIMATORS, kl_penalty
from posttrain.algos.policy_loss import ClippedSurrogate, clipped_surrogate
from posttrain.algos.registry import PRESETS, Preset, get_preset

__all__ = [
    "KL_ESTIMATORS",
    "LOSS_AGG_MODES",
    "PRESETS",
    "ClippedSurrogate",
    "Preset",
    "aggregate_loss",
    "broadcast_to_tokens",
    "clipped_surrogate",
    "get_preset",
    "grpo_advantages",
    "kl_penalty",
    "masked_mean",
    "zero_advantage_group_fraction",
]
