"""A run killed with SIGKILL after a checkpoint and resumed reproduces the uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from posttrain.trainers.checkpoint import MANIFEST, complete_checkpoints
from posttrain.trainers.metrics import read_metrics
from tests.conftest import grpo_recipe

pytestmark = pytest.mark.integration

STEPS = 12
TIMING = ("time/", "throughput/")


ALGORITHMS = {
    "grpo": {"name": "grpo"},
    # the value warm-up ends after step 5, past the kill: the critic, its optimiser and the warm-up
    # state must all come back
    "vc_ppo": {"name": "vc_ppo", "value_warmup_steps": 5},
}


def write_recipe(tmp_path: Path, name: str, model: Path, algorithm: dict) -> Path:
    raw = grpo_recipe(tmp_path / name, model={"path": str(model), "tiny": None}, algorithm=algorithm,
                      trainer={"steps": STEPS, "batch_size": 8, "checkpoint_every": 2, "save_total_limit": None,
                               "seed": 11})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def posttrain(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "posttrain", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def comparable(rows: list[dict]) -> dict[int, dict]:
    return {r["step"]: {k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_sigkill_then_resume_reproduces_metrics(algorithm: str, sft_model: Path, tmp_path: Path) -> None:
    reference = posttrain(str(write_recipe(tmp_path, "full", sft_model, ALGORITHMS[algorithm])))
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out

    recipe = write_recipe(tmp_path, "killed", sft_model, ALGORITHMS[algorithm])
    victim = posttrain(str(recipe))
    target = tmp_path / "killed" / "checkpoints" / "step-000004" / MANIFEST
    deadline = time.monotonic() + 600
    while not target.exists():
        assert victim.poll() is None, victim.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivors = complete_checkpoints(tmp_path / "killed")
    resumed_from = int(survivors[-1].name.split("-")[1])
    assert 4 <= resumed_from < STEPS, "the run finished before it could be killed"

    resumed = posttrain(str(recipe), "trainer.resume=auto")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert f"resumed from {survivors[-1]}" in out

    full = comparable(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    again = comparable(read_metrics(tmp_path / "killed" / "metrics.jsonl"))
    assert sorted(again) == sorted(full) == list(range(1, STEPS + 1))  # no step lost, none logged twice
    for step in range(resumed_from + 1, STEPS + 1):
        for key, value in full[step].items():
            assert again[step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)
    assert any(full[s]["reward/mean"] != full[resumed_from + 1]["reward/mean"] for s in full)
