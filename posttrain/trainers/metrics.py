"""Per-step metrics: one JSON object a line, flushed as written, optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsWriter:
    """Writes ``path`` (one process of a launched world writes; the others pass ``enabled=False``)."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None, enabled: bool = True) -> None:
        self.path = path
        self._file = None
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a")
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise RuntimeError("logging.tensorboard=true needs the tensorboard package installed") from err
            self._tb = SummaryWriter(str(tensorboard_dir))

    @staticmethod
    def truncate_after(path: Path, step: int) -> int:
        """Drop lines logged after ``step`` (a resumed run logs them again) and any line torn by a
        crash mid-write; returns the number of lines kept."""
        if not path.exists():
            return 0
        kept = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("step", 0) <= step:
                kept.append(line)
        path.write_text("".join(line + "\n" for line in kept))
        return len(kept)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if self._file is None:
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
