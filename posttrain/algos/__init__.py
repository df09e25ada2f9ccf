"""Pure math of post-training: advantages, losses, KL estimators, aggregation, presets."""

from posttrain.algos.advantages import (
    broadcast_to_tokens,
    group_indices,
    grpo_advantages,
    uniform_reward_group_fraction,
    zero_advantage_fraction,
)
from posttrain.algos.aggregation import LOSS_AGG_MODES, aggregate_loss, loss_units, masked_mean
from posttrain.algos.bnpo import beta_density, bnpo_advantages, bnpo_decomposed_advantages, fit_normalisation
from posttrain.algos.decoding import best_of_n_index, best_of_n_kl_bound, vas_logits
from posttrain.algos.estimators import (
    ESTIMATORS,
    AdvantageOptions,
    Advantages,
    GroupRollout,
    compute_advantages,
)
from posttrain.algos.gae import (
    explained_variance,
    gae,
    kl_shaped_rewards,
    length_adaptive_lambda,
    masked_whiten,
    outcome_token_rewards,
)
from posttrain.algos.kl import KL_ESTIMATORS, adaptive_kl_coef, kl_penalty
from posttrain.algos.lens import LensAdvantages, lens_advantages, normalised_confidence
from posttrain.algos.mapo import mapo_advantages, mapo_mixing_weight
from posttrain.algos.policy_loss import ClippedSurrogate, clipped_surrogate
from posttrain.algos.preference import PreferenceLoss, dpo_loss, dpo_pair_weight, ipo_loss, simpo_loss
from posttrain.algos.qrpo import TRANSFORMS, qrpo_loss, quantile_reward, transformed_reward
from posttrain.algos.registry import PRESETS, Preset, get_preset
from posttrain.algos.rollout_correction import LogprobMismatch, logprob_mismatch, truncated_is_weights
from posttrain.algos.terms import entropy_bonus, overlong_penalty, positive_example_nll
from posttrain.algos.value_loss import (
    categorical_support,
    categorical_value,
    categorical_value_loss,
    clipped_value_loss,
    hl_gauss_targets,
    two_hot_targets,
)

__all__ = [
    "TRANSFORMS",
    "PreferenceLoss",
    "best_of_n_index",
    "best_of_n_kl_bound",
    "dpo_loss",
    "dpo_pair_weight",
    "ipo_loss",
    "qrpo_loss",
    "simpo_loss",
    "quantile_reward",
    "transformed_reward",
    "vas_logits",
    "ESTIMATORS",
    "KL_ESTIMATORS",
    "LOSS_AGG_MODES",
    "PRESETS",
    "AdvantageOptions",
    "Advantages",
    "ClippedSurrogate",
    "GroupRollout",
    "LensAdvantages",
    "Preset",
    "adaptive_kl_coef",
    "aggregate_loss",
    "beta_density",
    "bnpo_advantages",
    "bnpo_decomposed_advantages",
    "broadcast_to_tokens",
    "categorical_support",
    "categorical_value",
    "categorical_value_loss",
    "clipped_surrogate",
    "clipped_value_loss",
    "compute_advantages",
    "entropy_bonus",
    "explained_variance",
    "fit_normalisation",
    "gae",
    "get_preset",
    "group_indices",
    "grpo_advantages",
    "hl_gauss_targets",
    "kl_penalty",
    "kl_shaped_rewards",
    "lens_advantages",
    "length_adaptive_lambda",
    "mapo_advantages",
    "mapo_mixing_weight",
    "LogprobMismatch",
    "logprob_mismatch",
    "loss_units",
    "masked_mean",
    "truncated_is_weights",
    "masked_whiten",
    "normalised_confidence",
    "outcome_token_rewards",
    "overlong_penalty",
    "positive_example_nll",
    "two_hot_targets",
    "uniform_reward_group_fraction",
    "zero_advantage_fraction",
]
