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


def test_custom_reward_from_a_file_with_labels_ids_and_timing(tmp_path) -> None:
    module = tmp_path / "my_rewards.py"
    module.write_text(
        "def short(prompts, completions, answers, completion_ids, limit=3):\n"
        "    return [1.0 if len(ids) <= limit else 0.0 for ids in completion_ids]\n"
        "class Echo:\n"
        "    def __init__(self, value):\n        self.value = value\n"
        "    def __call__(self, prompts, completions, answers):\n        return [self.value] * len(completions)\n"
    )
    rewards = RewardSet([
        RewardConfig(name=f"{module}:short", args={"limit": 2}),
        RewardConfig(name=f"{module}:Echo", args={"value": 0.25}, weight=2.0, label="echo"),
        RewardConfig(name="exact_answer"),
    ])
    scored = rewards.score(["p", "q"], ["5", "6"], ["5", "5"], completion_ids=[[1, 2], [1, 2, 3]])
    assert scored.components["short"].tolist() == [1.0, 0.0]
    assert scored.components["echo"].tolist() == [0.25, 0.25]
    assert scored.totals.tolist() == [1.0 + 0.5 + 1.0, 0.0 + 0.5 + 0.0]
    assert set(scored.seconds) == {"short", "echo", "exact_answer"}


def test_custom_reward_from_a_module() -> None:
    scored = RewardSet([RewardConfig(name="posttrain.rewards.verifiers:FormatReward",
                                     args={"pattern": r"\d+"})]).score(["p"], ["82"], [""])
    assert scored.components["FormatReward"].tolist() == [1.0]


def test_bad_custom_references_name_the_entry(tmp_path) -> None:
    with pytest.raises(RewardError, match=r"rewards\[0\].*not found"):
        RewardSet([RewardConfig(name=f"{tmp_path}/missing.py:f")])
    (tmp_path / "r.py").write_text("x = 1\n")
    with pytest.raises(RewardError, match="has no attribute 'f'"):
        RewardSet([RewardConfig(name=f"{tmp_path}/r.py:f")])
    with pytest.raises(RewardError, match="not callable"):
        RewardSet([RewardConfig(name=f"{tmp_path}/r.py:x")])
    with pytest.raises(RewardError, match="cannot import module"):
        RewardSet([RewardConfig(name="no_such_package.rewards:f")])


def test_wrong_batch_shape_falls_back_to_one_call_per_sample_when_told_to() -> None:
    rewards = RewardSet([RewardConfig(name="test_wrong_length", on_error="score_failed", failed_score=-1.0)])
    scored = rewards.score(["p", "q", "r"], ["a", "b", "c"], ["", "", ""])
    assert scored.components["test_wrong_length"].tolist() == [1.0, 1.0, 1.0]  # one score per single call fits
    assert scored.errors["test_wrong_length"] == 0
