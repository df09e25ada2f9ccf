"""Console progress: a live bar on a terminal, periodic plain lines elsewhere (CI logs, pipes)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

SHOWN = ("reward/mean", "accuracy", "loss", "eval/accuracy", "kl")


def summary(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{key}={metrics[key]:.3f}" for key in SHOWN if isinstance(metrics.get(key), (int, float)))


class ProgressReporter:
    def __init__(self, total: int, start: int, enabled: bool = True, label: str = "train") -> None:
        self.total, self.start, self.enabled, self.label = total, start, enabled, label
        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.every = max(1, (total - start) // 20)
        self._progress: Progress | None = None
        self._task = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> ProgressReporter:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, completed=self.start, info="")
        return self

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=step, info=summary(metrics))
        elif (step - self.start) % self.every == 0 or step == self.total:
            elapsed = time.perf_counter() - self._t0
            print(f"[{self.label}] step {step}/{self.total} ({elapsed:.0f}s)  {summary(metrics)}",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
