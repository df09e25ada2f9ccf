"""Rewards behind one protocol, composed by weight."""

from posttrain.rewards import answer as _builtin_answer  # noqa: F401  (registers the built-in rewards)
from posttrain.rewards import code as _builtin_code  # noqa: F401
from posttrain.rewards import reward_model as _builtin_reward_model  # noqa: F401
from posttrain.rewards import task_scorers as _builtin_task_scorers  # noqa: F401
from posttrain.rewards import verifiers as _builtin_verifiers  # noqa: F401
from posttrain.rewards.answer import answer_matches, extract_answer
from posttrain.rewards.base import (
    REWARD_FACTORIES,
    RewardError,
    RewardFn,
    RewardSet,
    ScoredBatch,
    register_reward,
)

__all__ = [
    "REWARD_FACTORIES",
    "RewardError",
    "RewardFn",
    "RewardSet",
    "ScoredBatch",
    "answer_matches",
    "extract_answer",
    "register_reward",
]
