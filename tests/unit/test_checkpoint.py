import json
from pathlib import Path

import pytest

from posttrain.data import EpochSampler
from posttrain.trainers import checkpoint as ckpt
from posttrain.trainers.metrics import MetricsWriter

pytestmark = pytest.mark.unit


def fake_save(folder: Path) -> None:
    folder.mkdir()
    (folder / "weights").write_text("w")


def test_manifest_marks_completion_and_newest_wins(tmp_path: Path) -> None:
    for step in (2, 4, 10):
        ckpt.save_checkpoint(tmp_path, step, fake_save, {"step": step}, "recipe: x\n", keep=None)
    torn = ckpt.checkpoint_root(tmp_path) / "step-000012"
    torn.mkdir()  # a crash before the manifest: must be ignored
    (ckpt.checkpoint_root(tmp_path) / ".tmp-step-000014-1").mkdir()
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step-000002", "step-000004", "step-000010"]
    assert ckpt.resolve_resume(tmp_path, "auto").name == "step-000010"
    assert ckpt.resolve_resume(tmp_path, "none") is None
    assert ckpt.load_state(ckpt.resolve_resume(tmp_path, "auto"))["step"] == 10
    manifest = json.loads((ckpt.checkpoint_root(tmp_path) / "step-000010" / ckpt.MANIFEST).read_text())
    assert manifest["step"] == 10 and "model" in manifest["files"]


def test_keep_limit_prunes_oldest(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path, step, fake_save, {}, "", keep=2)
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step-000002", "step-000003"]


def test_resume_from_incomplete_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        ckpt.resolve_resume(tmp_path, str(tmp_path))


def test_fresh_run_refuses_old_checkpoints(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path, 1, fake_save, {}, "", keep=None)
    with pytest.raises(FileExistsError, match="trainer.resume=auto"):
        ckpt.claim_fresh_output_dir(tmp_path, overwrite=False)
    ckpt.claim_fresh_output_dir(tmp_path, overwrite=True)
    assert ckpt.complete_checkpoints(tmp_path) == []


def test_metrics_truncation_drops_later_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "x": s}) + "\n" for s in range(1, 6)) + '{"step": 6, "x"')
    assert MetricsWriter.truncate_after(path, 3) == 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_sampler_state_round_trip() -> None:
    a = EpochSampler(10, seed=3)
    first = a.next_batch(7)
    state = a.state_dict()
    b = EpochSampler(10, seed=3)
    b.load_state_dict(state)
    assert a.next_batch(9) == b.next_batch(9)  # crosses an epoch boundary
    assert sorted(first + EpochSampler(10, seed=3).next_batch(10)[7:]) == list(range(10))
