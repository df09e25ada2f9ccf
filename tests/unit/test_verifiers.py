import pytest

from posttrain.rewards.verifiers import (
    FormatReward,
    LengthPenaltyReward,
    MathAnswerReward,
    OverlongPenaltyReward,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("The answer is \\boxed{\\frac{1}{2}}", "0.5", True),
        ("so x = 0.5", "1/2", True),
        ("Final answer: $\\frac{3}{4}$", "0.75", True),
        ("\\boxed{\\dfrac{6}{8}}", "3/4", True),
        ("\\boxed{50\\%}", "0.5", True),
        ("\\boxed{2,3}", "\\{3,2\\}", True),
        ("\\boxed{\\sqrt{4}}", "2", True),
        ("\\boxed{1{,}000}", "1000", True),
        ("\\boxed{\\frac{1}{2}}", "\\frac12", True),
        ("The final answer is 12", "12", True),
        ("\\boxed{5} wait, no: \\boxed{6}", "6", True),  # the last boxed answer counts
        ("\\boxed{5} wait, no: \\boxed{6}", "5", False),
        ("\\boxed{41}", "42", False),
        ("\\boxed{1/3}", "0.33", False),
        ("\\boxed{-2}", "2", False),
        ("\\boxed{x}", "3", False),
        ("no answer here", "3", False),
        ("", "3", False),
    ],
)
def test_math_answer_equivalences(completion: str, answer: str, expected: bool) -> None:
    reward = MathAnswerReward()
    assert reward(["q"], [completion], [answer]) == [1.0 if expected else 0.0]


def test_unparseable_reference_is_an_error() -> None:
    with pytest.raises(ValueError, match="reference answer"):
        MathAnswerReward().matches("\\boxed{1}", "")


def test_format_by_tags_and_pattern() -> None:
    tags = FormatReward(required_tags=["<think>", "</think>", "<answer>", "</answer>"])
    good = "<think>add</think><answer>82</answer>"
    assert tags([""] * 3, [good, "<answer>82</answer><think></think>", "82"], [""] * 3) == [1.0, 0.0, 0.0]
    partial = FormatReward(required_tags=["<think>", "</think>", "<answer>", "</answer>"], partial=True)
    assert partial([""], ["<think>add</think> 82"], [""]) == [0.5]
    pattern = FormatReward(pattern=r"<think>.*</think>\s*<answer>-?\d+</answer>")
    assert pattern([""] * 2, [good, good + " trailing"], [""] * 2) == [1.0, 0.0]
    assert FormatReward(pattern=r"\d+", search=True)([""], ["the 82"], [""]) == [1.0]
    with pytest.raises(TypeError, match="not a valid regular expression"):
        FormatReward(pattern="(")
    with pytest.raises(TypeError, match="needs a pattern"):
        FormatReward()


def test_length_penalty_in_tokens_and_chars() -> None:
    reward = LengthPenaltyReward(max_length=10, free=4, coef=0.5)
    ids = [[1] * 2, [1] * 7, [1] * 30]
    assert reward([""] * 3, ["", "", ""], [""] * 3, completion_ids=ids) == pytest.approx([0.0, -0.25, -0.5])
    chars = LengthPenaltyReward(max_length=10, free=0, unit="chars")
    assert chars([""], ["abcde"], [""]) == pytest.approx([-0.5])
    with pytest.raises(ValueError, match="completion_ids"):
        reward([""], ["abc"], [""])


def test_overlong_penalty_reward() -> None:
    reward = OverlongPenaltyReward(max_length=20, buffer=4)
    ids = [[0] * n for n in (10, 16, 18, 20)]
    assert reward([""] * 4, [""] * 4, [""] * 4, completion_ids=ids) == pytest.approx([0.0, 0.0, -0.5, -1.0])
    with pytest.raises(TypeError, match="buffer"):
        OverlongPenaltyReward(max_length=20, buffer=30)
