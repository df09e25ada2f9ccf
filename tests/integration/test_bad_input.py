"""Bad inputs get errors that name the file, row or field; bad updates are skipped and counted."""

import json
import math
from pathlib import Path

import pytest

from posttrain.config import validate_recipe
from posttrain.data import DataError
from posttrain.models import ModelLoadError
from posttrain.rewards import RewardError, register_reward
from posttrain.trainers import OnlineTrainer, train
from posttrain.trainers.checkpoint import complete_checkpoints
from posttrain.trainers.metrics import read_metrics
from tests.conftest import grpo_recipe

pytestmark = pytest.mark.integration


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_missing_model_folder(tmp_path: Path) -> None:
    recipe = validate_recipe(grpo_recipe(tmp_path / "out", model={"path": str(tmp_path / "no-model"), "tiny": None}))
    with pytest.raises(ModelLoadError, match=r"model\.path=.*no-model.*folder not found"):
        train(recipe)


def test_model_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    recipe = validate_recipe(grpo_recipe(tmp_path / "out", model={"path": str(tmp_path / "empty"), "tiny": None}))
    with pytest.raises(ModelLoadError, match="no config.json"):
        train(recipe)


def test_row_without_answer_field(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2=", "ans": "4"}])
    recipe = validate_recipe(grpo_recipe(tmp_path / "out", data={"path": str(data), "task": None}))
    with pytest.raises(DataError, match=r"train\.jsonl: row 1 has no field 'answer'.*data\.answer_field"):
        train(recipe)


def test_empty_dataset(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("")
    recipe = validate_recipe(grpo_recipe(tmp_path / "out", data={"path": str(data), "task": None}))
    with pytest.raises(DataError, match="train.jsonl"):
        train(recipe)


def test_prompt_longer_than_context(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "1+1=", "answer": "2"}, {"prompt": "9" * 300, "answer": "1"}])
    recipe = validate_recipe(grpo_recipe(tmp_path / "out", data={"path": str(data), "task": None}))
    with pytest.raises(DataError, match=r"row 1 prompt is 300 tokens; the limit is 251 \(model context 256"):
        train(recipe)


def test_local_folder_with_split_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"question": f"{i}+1=", "answer": str(i + 1)} for i in range(8)])
    recipe = validate_recipe(grpo_recipe(tmp_path / "out", data={"path": str(folder), "task": None,
                                                                  "prompt_field": "question"},
                                         trainer={"steps": 1, "batch_size": 4}))
    assert train(recipe).status == "completed"
    recipe = validate_recipe(grpo_recipe(tmp_path / "out2", data={"path": str(folder), "task": None, "split": "dev"}))
    with pytest.raises(DataError, match="no dev.jsonl"):
        train(recipe)


@register_reward("test_raises_sometimes")
class RaisesOnOddLength:
    def __call__(self, prompts, completions, answers):
        if any(len(c) % 2 for c in completions):
            raise ValueError("odd")
        return [1.0 for _ in completions]


def test_raising_reward_fails_or_is_counted(tmp_path: Path) -> None:
    raw = grpo_recipe(tmp_path / "a", rewards=[{"name": "test_raises_sometimes"}])
    with pytest.raises(RewardError, match="test_raises_sometimes"):
        train(validate_recipe(raw))
    raw = grpo_recipe(tmp_path / "b", rewards=[{"name": "test_raises_sometimes", "on_error": "score_failed"}],
                      trainer={"steps": 2})
    assert train(validate_recipe(raw)).status == "completed"
    metrics = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert sum(m["reward/test_raises_sometimes/errors"] for m in metrics) > 0


class NaNAfterFirstStep(OnlineTrainer):
    def _loss(self, mb):
        loss, stats = super()._loss(mb)
        return (loss * math.nan if self.step >= 1 else loss), stats


def test_nonfinite_updates_are_skipped_then_the_run_stops_with_a_checkpoint(tmp_path: Path) -> None:
    raw = grpo_recipe(tmp_path, trainer={"steps": 10, "max_consecutive_nonfinite": 3, "checkpoint_every": 1,
                                          "save_total_limit": None})
    trainer = NaNAfterFirstStep(validate_recipe(raw))
    result = trainer.run()
    assert result.status == "stopped" and "3 updates in a row" in result.reason
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m["nonfinite/skipped"] for m in metrics] == [0, 1, 1]
    assert metrics[-1]["nonfinite/total"] == 2
    assert result.step == 3 and complete_checkpoints(tmp_path)[-1].name == "step-000003"
    # skipped updates left the weights as they were after step 1
    import torch
    from safetensors.torch import load_file

    after_1 = load_file(tmp_path / "checkpoints" / "step-000001" / "model" / "model.safetensors")
    after_3 = load_file(tmp_path / "checkpoints" / "step-000003" / "model" / "model.safetensors")
    assert all(torch.equal(after_1[k], after_3[k]) for k in after_1)
