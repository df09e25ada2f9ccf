"""pass@k and maj@k against hand-computed values."""

import math

import pytest

from posttrain.data.tasks.gsm8k import gsm8k_final_answer
from posttrain.evaluation.harness import cut_at_stop
from posttrain.evaluation.metrics import majority_at_k, pass_at_k, win_rate
from posttrain.rewards.answer import extract_answer

pytestmark = pytest.mark.unit


def test_pass_at_k_matches_the_combinatorial_formula() -> None:
    # n = 5 samples, 2 correct: pass@1 = 2/5; pass@2 = 1 − C(3,2)/C(5,2) = 1 − 3/10
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert pass_at_k(5, 4, 2) == 1.0  # fewer wrong samples than k: a correct one is always drawn
    assert pass_at_k(5, 0, 5) == 0.0


def test_pass_at_k_rejects_impossible_arguments() -> None:
    with pytest.raises(ValueError, match="0 < k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="c=4"):
        pass_at_k(3, 4, 1)


def test_majority_vote() -> None:
    votes, correct = ["12", "13", "13", None, "12"], [True, False, False, False, True]
    assert majority_at_k(votes, correct, 3) is False  # 13 wins 2:1
    assert majority_at_k(votes, correct, 5) is True  # 2:2 tie goes to 12, seen first
    assert majority_at_k([None, None], [False, False], 2) is False  # nothing extracted: wrong, not skipped


def test_win_rate_counts_ties_half() -> None:
    assert win_rate([1.0, 0.0, 0.5, 0.2], [0.0, 0.0, 0.9, 0.2]) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    with pytest.raises(ValueError, match="got 2 and 1"):
        win_rate([1.0, 0.0], [1.0])


def test_completions_are_cut_at_the_first_stop_string() -> None:
    text = "She has 5 apples.\nQuestion: Tom has 3</s>"
    assert cut_at_stop(text, ["</s>", "Question:"]) == "She has 5 apples.\n"
    assert cut_at_stop(text, []) == text and cut_at_stop(text, ["Answer:"]) == text


@pytest.mark.parametrize(
    ("completion", "mode", "vote"),
    [(" 82\n", "exact", "82"), ("5 + 3 = 8, so 8 apples", "last_number", "8"), ("It costs $1,250.", "last_number", "1250"),
     ("-3 degrees, then 4", "first_number", "-3"), ("no digits here", "last_number", None), ("2.50 each", "first_number", "2.50")],
)
def test_vote_extraction(completion: str, mode: str, vote: str | None) -> None:
    assert extract_answer(completion, mode) == vote


def test_gsm8k_final_answer_is_the_number_after_the_marker() -> None:
    assert gsm8k_final_answer("16 - 3 - 4 = <<16-3-4=9>>9\n9 * 2 = 18\n#### 18") == "18"
    assert gsm8k_final_answer("… so 1,000 + 200\n#### 1,200") == "1200"
    with pytest.raises(ValueError, match="no '####'"):
        gsm8k_final_answer("the answer is 5")
