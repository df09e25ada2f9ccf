"""Synthetic integer arithmetic with verifiable answers.

Each row has ``prompt`` (``"37+45="``), ``answer`` (``"82"``) and ``completion``: the
demonstration an SFT stage imitates. With ``demonstration_flaw="drop_units_carry"`` the
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
    rows = [_row(problem, spec.demonstration_flaw) for problem in problems]
    return {"test": rows[: spec.num_test], "train": rows[spec.num_test :]}


def _selected(problem: Problem, kind: str) -> bool:
    if kind == "all":
        return True
    return has_units_carry(*problem) == (kind == "units_carry")


def _row(problem: Problem, flaw: str) -> dict[str, str]:
    a, op, b = problem
    return {
        "prompt": f"{a}{op}{b}=",
        "answer": str(solve(a, op, b)),
        "completion": str(flawed_demonstration(a, op, b, flaw)),
        "units_carry": str(has_units_carry(a, op, b)).lower(),
    }
