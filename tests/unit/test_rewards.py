import math

import pytest

from posttrain.config import RewardConfig
from posttrain.rewards import RewardError, RewardSet, answer_matches, register_reward

pytestmark = pytest.mark.unit


@register_reward("test_boom_on_x")
class BoomOnX:
    def __call__(self, prompts, completions, answers):
        if any("x" in c for c in completions):
            raise RuntimeError("cannot score x")
        return [0.5 for _ in completions]


@register_reward("test_wrong_length")
def wrong_length():
    return lambda prompts, completions, answers: [1.0]


@register_reward("test_nan")
def nan_reward():
    return lambda prompts, completions, answers: [math.nan for _ in completions]


@pytest.mark.parametrize(
    ("completion", "answer", "mode", "expected"),
    [("82", "82", "exact", True), (" 82\n", "82", "exact", True), ("82 ", "83", "exact", False),
     ("820", "82", "exact", False), ("the answer is 82", "82", "exact", False),
     ("the answer is 82", "82", "last_number", True), ("7 then 82", "82", "first_number", False),
     ("1,234", "1234", "last_number", True), ("", "0", "exact", False), ("-5", "-5", "first_number", True)],
)
def test_answer_matching(completion, answer, mode, expected) -> None:
    assert answer_matches(completion, answer, mode) is expected


def test_weighted_sum_and_components() -> None:
    rewards = RewardSet([RewardConfig(name="exact_answer", weight=2.0),
                         RewardConfig(name="exact_answer", weight=-1.0, args={"mode": "last_number"})])
    scored = rewards.score(["p", "p"], ["4", "so 4"], ["4", "4"])
    assert scored.totals.tolist() == [1.0, -1.0]
    assert set(scored.components) == {"exact_answer", "exact_answer_2"}


def test_raising_reward_fails_the_run_by_default() -> None:
    rewards = RewardSet([RewardConfig(name="test_boom_on_x")])
    with pytest.raises(RewardError, match="test_boom_on_x.*on_error: score_failed"):
        rewards.score(["p"] * 3, ["a", "x", "b"], ["", "", ""])


def test_raising_reward_scores_only_the_bad_sample_as_failed() -> None:
    rewards = RewardSet([RewardConfig(name="test_boom_on_x", on_error="score_failed", failed_score=-1.0)])
    scored = rewards.score(["p"] * 3, ["a", "x", "b"], ["", "", ""])
    assert scored.totals.tolist() == [0.5, -1.0, 0.5]
    assert scored.errors == {"test_boom_on_x": 1}


@pytest.mark.parametrize("name", ["test_wrong_length", "test_nan"])
def test_bad_outputs_are_errors(name: str) -> None:
    with pytest.raises(RewardError, match=name):
        RewardSet([RewardConfig(name=name)]).score(["p", "q"], ["a", "b"], ["", ""])


def test_unknown_reward_and_bad_args_name_the_entry() -> None:
    with pytest.raises(RewardError, match=r"rewards\[0\]\.name='nope'"):
        RewardSet([RewardConfig(name="nope")])
    with pytest.raises(RewardError, match=r"rewards\[1\]\.args"):
        RewardSet([RewardConfig(), RewardConfig(args={"mode": "fuzzy"})])
