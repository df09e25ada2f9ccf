import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from posttrain.cli import main
from tests.conftest import grpo_recipe

pytestmark = pytest.mark.integration


def test_config_prints_resolved_recipe(tmp_path: Path, capsys) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(grpo_recipe(tmp_path, algorithm={"name": "dr_grpo"})))
    assert main(["config", str(path), "trainer.steps=9"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["trainer"]["steps"] == 9
    assert resolved["algorithm"]["loss_agg_mode"] == "seq-mean-token-sum-norm"


def test_bad_recipe_exits_2_naming_the_field(tmp_path: Path, capsys) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(grpo_recipe(tmp_path)))
    assert main(["train", str(path), "rollout.num_generation=4"]) == 2
    assert "did you mean 'rollout.num_generations'" in capsys.readouterr().err


def test_algos_lists_presets(capsys) -> None:
    assert main(["algos"]) == 0
    out = capsys.readouterr().out
    for name in ("grpo", "dr_grpo", "dapo", "mapo", "bnpo", "lens", "sft"):
        assert f"\n{name}  [" in f"\n{out}", name
    block = out.split("\nbnpo  [")[1].split("\n\n")[0]
    assert "arXiv 2506.02864" in block
    assert [line.split() for line in block.splitlines() if "dual_clip" in line] == [["dual_clip", "10.0"]]


def test_train_then_plot_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(grpo_recipe(tmp_path / "run", trainer={"steps": 2})))
    done = subprocess.run([sys.executable, "-m", "posttrain", "train", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "completed at step 2" in done.stdout
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    png = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "run"), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_plot_of_missing_run_names_it(tmp_path: Path, capsys) -> None:
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert f"no metrics file at {tmp_path / 'nothing'}" in capsys.readouterr().err
