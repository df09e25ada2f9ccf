"""Synthetic integer arithmetic with verifiable answers.

Each row has ``prompt`` (``"37+45="``), ``answer`` (``"82"``), ``completion``: the
demonstration an SFT stage imitates, and a preference pair ``chosen`` (the correct result)
/ ``rejected`` (a plausible wrong one) for reward-model and preference training. With ``demonstration_flaw="drop_units_carry"`` the
demonstrations forget the carry (or borrow) between the units and the tens column, the
kind of systematic error real demonstrations have; ``answer`` always stays correct.
"""

from __future__ import annotations

import random

from posttrain.config.schema import TaskConfig

Problem = tuple[int, str, int]


def solve(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def flawed_demonstration(a: int, op: str, b: int, flaw: str) -> int:
    result = solve(a, op, b)
    if flaw == "drop_units_carry":
        if op == "+" and a % 10 + b % 10 >= 10:
            return result - 10
        if op == "-" and a % 10 < b % 10:
            return result + 10
    return result


def has_units_carry(a: int, op: str, b: int) -> bool:
    return a % 10 + b % 10 >= 10 if op == "+" else a % 10 < b % 10


def generate_arithmetic(spec: TaskConfig) -> dict[str, list[dict[str, str]]]:
    """Disjoint train and test splits, identical for identical specs."""
    low = 0 if spec.digits == 1 else 10 ** (spec.digits - 1)
    high = 10**spec.digits - 1 if spec.max_operand is None else spec.max_operand
    if not low <= high < 10**spec.digits:
        raise ValueError(f"data.task.max_operand={spec.max_operand} must have {spec.digits} digit(s)")
    available = (high - low + 1) ** 2 * len(set(spec.operations))
    wanted = spec.num_train + spec.num_test
    if wanted > available:
        raise ValueError(
            f"data.task asks for {wanted} distinct problems (num_train + num_test) but only {available} "
            f"exist with digits={spec.digits} and operations={spec.operations}"
        )
    rng = random.Random(spec.seed)
    seen: set[Problem] = set()
    problems: list[Problem] = []
    draws = 0
    while len(problems) < wanted:
        draws += 1
        if draws > 100 * wanted:
            raise ValueError(f"data.task.problems={spec.problems!r}: found only {len(problems)} of {wanted} distinct "
                             f"problems with digits={spec.digits}; lower num_train/num_test")
        problem = (rng.randint(low, high), rng.choice(spec.operations), rng.randint(low, high))
        if problem not in seen and _selected(problem, spec.problems):
            seen.add(problem)
            problems.append(problem)
    rows = [_row(problem, spec.demonstration_flaw, random.Random(f"{spec.seed}:{i}")) for i, problem in enumerate(problems)]
    return {"test": rows[: spec.num_test], "train": rows[spec.num_test :]}


def _selected(problem: Problem, kind: str) -> bool:
    if kind == "all":
        return True
    return has_units_carry(*problem) == (kind == "units_carry")


def wrong_answer(a: int, op: str, b: int, rng: random.Random) -> str:
    """A wrong result of the kinds a policy produces: the dropped carry, off by 1, 10 or 100,
    any other number of similar size, or the right digits cut short or run on."""
    correct = solve(a, op, b)
    kind = rng.choice(["carry", "near", "near", "any", "any", "cut", "extra"])
    if kind == "carry" and has_units_carry(a, op, b):
        return str(flawed_demonstration(a, op, b, "drop_units_carry"))
    if kind == "cut" and len(str(correct)) > 1:
        return str(correct)[:-1]
    if kind == "extra":
        return f"{correct}{rng.randint(0, 9)}"
    if kind == "any":
        wrong = correct
        while wrong == correct:
            wrong = rng.randint(0, 2 * 10 ** len(str(max(a, b, 1))) - 1)
        return str(wrong)
    return str(correct + rng.choice([-100, -10, -2, -1, 1, 2, 10, 100]))


def _row(problem: Problem, flaw: str, rng: random.Random) -> dict[str, str]:
    """A problem with its demonstration and a preference pair (correct vs plausible wrong answer)."""
    a, op, b = problem
    return {
        "prompt": f"{a}{op}{b}=",
        "answer": str(solve(a, op, b)),
        "completion": str(flawed_demonstration(a, op, b, flaw)),
        "chosen": str(solve(a, op, b)),
        "rejected": wrong_answer(a, op, b, rng),
        "units_carry": str(has_units_carry(a, op, b)).lower(),
    }
