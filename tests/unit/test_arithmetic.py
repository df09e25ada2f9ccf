import pytest

from posttrain.config import TaskConfig
from posttrain.data.tasks.arithmetic import flawed_demonstration, generate_arithmetic

pytestmark = pytest.mark.unit


def test_splits_are_disjoint_deterministic_and_correct() -> None:
    spec = TaskConfig(num_train=500, num_test=100, seed=4, operations=["+", "-"])
    splits = generate_arithmetic(spec)
    assert len(splits["train"]) == 500 and len(splits["test"]) == 100
    assert not {r["prompt"] for r in splits["train"]} & {r["prompt"] for r in splits["test"]}
    assert generate_arithmetic(spec) == splits
    assert generate_arithmetic(spec.model_copy(update={"seed": 5})) != splits
    for row in splits["train"] + splits["test"]:
        assert str(eval(row["prompt"].rstrip("="))) == row["answer"]
        assert row["completion"] == row["answer"]  # no flaw asked for


def test_carry_flaw() -> None:
    assert flawed_demonstration(38, "+", 45, "drop_units_carry") == 73
    assert flawed_demonstration(31, "+", 45, "drop_units_carry") == 76
    assert flawed_demonstration(52, "-", 17, "drop_units_carry") == 45
    assert flawed_demonstration(38, "+", 45, "none") == 83
    rows = generate_arithmetic(TaskConfig(num_train=300, num_test=10, demonstration_flaw="drop_units_carry"))["train"]
    wrong = [r for r in rows if r["completion"] != r["answer"]]
    assert wrong and all(r["units_carry"] == "true" for r in wrong)
    assert all(r["completion"] == r["answer"] for r in rows if r["units_carry"] == "false")


def test_asking_for_more_problems_than_exist() -> None:
    with pytest.raises(ValueError, match="only 100 exist"):
        generate_arithmetic(TaskConfig(digits=1, num_train=95, num_test=10))


def test_max_operand_bounds_problems() -> None:
    rows = generate_arithmetic(TaskConfig(max_operand=49, num_train=300, num_test=50))["train"]
    assert all(10 <= int(p) <= 49 for r in rows for p in r["prompt"].rstrip("=").split("+"))
    with pytest.raises(ValueError, match="max_operand=123 must have 2 digit"):
        generate_arithmetic(TaskConfig(max_operand=123))


@pytest.mark.parametrize(("kind", "flag"), [("units_carry", "true"), ("no_units_carry", "false")])
def test_problem_filter_keeps_one_class(kind: str, flag: str) -> None:
    splits = generate_arithmetic(TaskConfig(num_train=300, num_test=50, problems=kind))
    rows = splits["train"] + splits["test"]
    assert len(rows) == 350 and {row["units_carry"] for row in rows} == {flag}


def test_problem_filter_that_cannot_be_met_names_the_field() -> None:
    with pytest.raises(ValueError, match="data.task.problems='units_carry'"):
        generate_arithmetic(TaskConfig(digits=1, num_train=60, num_test=10, problems="units_carry"))
