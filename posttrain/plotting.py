"""Training curves from ``metrics.jsonl`` files, drawn to PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from posttrain.trainers.metrics import read_metrics

DEFAULT_KEYS = ("reward/mean", "accuracy", "eval/accuracy", "kl", "loss", "response_length/mean")


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, keys: Sequence[str] | None = None,
              metrics_file: str = "metrics.jsonl") -> Path:
    """One panel per metric, one line per run; only metrics some run logged are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for run in run_dirs:
        path = Path(run) / metrics_file if Path(run).is_dir() else Path(run)
        if not path.is_file():
            raise FileNotFoundError(f"no metrics file at {path}")
        runs[str(run)] = read_metrics(path)
    wanted = list(keys or DEFAULT_KEYS)
    present = [k for k in wanted if any(k in row for rows in runs.values() for row in rows)]
    if not present:
        raise ValueError(f"none of the metrics {wanted} appear in {list(runs)}")
    columns = min(3, len(present))
    rows_n = (len(present) + columns - 1) // columns
    fig, axes = plt.subplots(rows_n, columns, figsize=(5 * columns, 3.5 * rows_n), squeeze=False)
    for ax, key in zip(axes.flat, present):
        for name, rows in runs.items():
            points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=Path(name).name, marker="." if len(points) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
