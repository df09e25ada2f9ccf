"""Execution-based reward: a completion's code runs against the sample's tests in the sandbox."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from posttrain.rewards.base import register_reward
from posttrain.rewards.sandbox import SandboxLimits, run_many

_FENCE = re.compile(r"```(?:python|py)?[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str:
    """The last fenced code block of a completion, or the whole completion when it has none."""
    blocks = _FENCE.findall(completion)
    return blocks[-1] if blocks else completion


def build_program(prompt: str, completion: str, tests: str, include_prompt: bool, extract_block: bool) -> str:
    code = extract_code(completion) if extract_block else completion
    solution = prompt + code if include_prompt else code
    return f"{solution}\n\n{tests}\n"


@register_reward("code_tests")
class CodeTestsReward:
    """``passed`` when the program (completion, plus the prompt if ``include_prompt``, then the
    sample's answer field as test code) exits with status 0 inside the sandbox, else
    ``failed``. Timeouts, crashes, resource-limit kills and refused operations all score
    ``failed``. Programs run in parallel, at most ``workers`` at a time.
    """

    def __init__(
        self,
        include_prompt: bool = False,
        extract_block: bool = True,
        workers: int = 4,
        timeout_s: float = 10.0,
        cpu_s: int = 10,
        memory_mb: int = 1024,
        file_size_mb: int = 16,
        user: str = "nobody",
        passed: float = 1.0,
        failed: float = 0.0,
    ) -> None:
        self.include_prompt, self.extract_block, self.workers = include_prompt, extract_block, workers
        self.limits = SandboxLimits(timeout_s=timeout_s, cpu_s=cpu_s, memory_mb=memory_mb,
                                    file_size_mb=file_size_mb, user=user)
        self.passed, self.failed = passed, failed

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str],
                 **_: Any) -> list[float]:
        programs = [build_program(p, c, a, self.include_prompt, self.extract_block)
                    for p, c, a in zip(prompts, completions, answers)]
        results = run_many(programs, self.limits, self.workers)
        return [self.passed if r.passed else self.failed for r in results]
