import pytest

from posttrain.config import ReasoningGymConfig, RewardConfig
from posttrain.data.tasks.reasoning_gym import generate_reasoning_gym
from posttrain.rewards import RewardSet
from posttrain.rewards.task_scorers import ReasoningGymReward, extract_final

pytestmark = pytest.mark.unit


def test_extract_final() -> None:
    assert extract_final("think\n<answer>1</answer> then <answer> 42 </answer>", "answer_tag") == "42"
    assert extract_final("no tags 7", "answer_tag") == "no tags 7"
    assert extract_final("a\nb\n\n", "last_line") == "b"
    assert extract_final(" x ", "full") == " x "


@pytest.mark.parametrize("dataset", ["basic_arithmetic", "gsm_symbolic"])
def test_any_reasoning_gym_dataset_is_scored_by_its_own_scorer(dataset: str) -> None:
    splits = generate_reasoning_gym(ReasoningGymConfig(dataset=dataset, size=6, test_size=2, seed=3))
    assert len(splits["train"]) == 6 and len(splits["test"]) == 2
    rows = splits["train"][:3]
    reward = ReasoningGymReward(extract="answer_tag")
    right = reward([r["prompt"] for r in rows], [f"<answer>{r['answer']}</answer>" for r in rows],
                   [r["answer"] for r in rows], rows=rows)
    wrong = reward([r["prompt"] for r in rows], ["<answer>definitely not</answer>"] * 3,
                   [r["answer"] for r in rows], rows=rows)
    assert right == [1.0, 1.0, 1.0] and max(wrong) < 1.0


def test_rows_reach_rewards_that_ask_for_them_and_missing_entries_are_errors() -> None:
    rows = generate_reasoning_gym(ReasoningGymConfig(dataset="basic_arithmetic", size=2, test_size=1))["train"]
    scored = RewardSet([RewardConfig(name="reasoning_gym", args={"extract": "full"})]).score(
        [r["prompt"] for r in rows], [r["answer"] for r in rows], [r["answer"] for r in rows], rows=rows)
    assert scored.components["reasoning_gym"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="needs data.reasoning_gym rows"):
        ReasoningGymReward()(["p"], ["1"], ["1"], rows=[{"prompt": "p"}])
