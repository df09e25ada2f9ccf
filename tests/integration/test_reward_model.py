"""Train a Bradley-Terry reward model on the arithmetic pairs, reload it with plain
transformers, then use it as GRPO's only reward and see the policy climb it."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from posttrain.config import load_recipe
from posttrain.data.preference import usable_pairs
from posttrain.models.loading import load_tokenizer
from posttrain.models.reward_model import score_texts
from posttrain.trainers import train
from posttrain.trainers.metrics import read_metrics
from tests.conftest import TASK_OVERRIDE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def test_pairs_with_empty_or_identical_sides_are_dropped_and_counted() -> None:
    keep, empty, identical = usable_pairs(["p"] * 4, ["a", "", "b", "c"], ["b", "x", "b", " "])
    assert keep == [0] and empty == 2 and identical == 1


@pytest.fixture(scope="module")
def reward_model(sft_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rm")
    recipe = load_recipe(ROOT / "reward_models" / "arithmetic_rm.yaml", [
        f"model.path={sft_model}", TASK_OVERRIDE, "trainer.steps=300", "trainer.batch_size=64",
        "trainer.lr_scheduler=constant", "trainer.eval_every=300", "trainer.eval_samples=200", "trainer.checkpoint_every=0", f"trainer.output_dir={out}",
        "logging.progress=false"])
    assert train(recipe).status == "completed"
    return out


def test_reward_model_learns_to_rank_held_out_pairs(reward_model: Path) -> None:
    metrics = read_metrics(reward_model / "metrics.jsonl")
    assert metrics[0]["eval/accuracy"] < 0.65  # a fresh score head is close to chance
    assert metrics[-1]["eval/accuracy"] >= 0.75, metrics[-1]
    assert metrics[-1]["loss"] < metrics[1]["loss"]


def test_reward_model_checkpoint_is_a_plain_transformers_model(reward_model: Path) -> None:
    folder = sorted((reward_model / "checkpoints").glob("step-*"))[-1] / "model"
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = load_tokenizer(load_recipe(reward_model / "recipe.yaml").model.model_copy(
        update={"path": str(folder), "tiny": None}))
    scores = score_texts(model, tokenizer, ["37+45=82", "37+45=72", "37+45=83"])
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    assert scores[0] > scores[1]


def test_grpo_climbs_the_reward_model_used_as_its_only_reward(
        reward_model: Path, sft_model: Path, tmp_path: Path) -> None:
    recipe = load_recipe(ROOT / "recipes" / "grpo_reward_model.yaml", [
        f"model.path={sft_model}", TASK_OVERRIDE, f"rewards=[{{name: reward_model, args: {{path: {reward_model}}}}}]",
        "trainer.steps=30", "trainer.eval_every=0", f"trainer.output_dir={tmp_path}", "logging.progress=false"])
    assert [r.name for r in recipe.rewards] == ["reward_model"]
    assert train(recipe).status == "completed"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    scores = [m["reward/reward_model"] for m in metrics]
    assert sum(scores[-10:]) / 10 > sum(scores[:10]) / 10 + 0.2, scores
    assert all(m["reward/reward_model/errors"] == 0 for m in metrics)


def test_pairs_from_the_policys_own_samples_resume_and_train_a_reward_model(sft_model: Path, tmp_path: Path) -> None:
    from posttrain.cli import main

    out = tmp_path / "pairs"
    args = ["pairs", str(ROOT / "recipes" / "grpo.yaml"), f"model.path={sft_model}",
            "data.task={name: arithmetic, digits: 2, num_train: 96, num_test: 32}", "logging.progress=false",
            "--out", str(out), "--samples", "4"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert 0 < len(rows) <= 96 and (out / "train.progress").read_text() == "96"
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert all(r["chosen"] == r["answer"] for r in rows)  # the verifier put the right answer on top
    assert main(args) == 0  # finished splits are skipped, nothing is duplicated
    assert len((out / "train.jsonl").read_text().splitlines()) == len(rows)

    recipe = load_recipe(ROOT / "reward_models" / "arithmetic_rm.yaml", [
        f"model.path={sft_model}", "data.task=null", f"data.path={out}", "trainer.steps=2", "trainer.eval_every=2",
        "trainer.eval_samples=32", "trainer.checkpoint_every=0", f"trainer.output_dir={tmp_path / 'rm'}",
        "logging.progress=false"])
    assert train(recipe).status == "completed"
    assert "eval/accuracy" in read_metrics(tmp_path / "rm" / "metrics.jsonl")[-1]


def test_eval_suites_score_the_reward_model_and_judge_win_rates(reward_model: Path, sft_model: Path,
                                                                 tmp_path: Path) -> None:
    """The pair suite reproduces the trainer's held-out pair accuracy (same 200 test pairs); the
    win-rate suite, judged by the reward model, ranks the SFT model above a fresh one, and a model
    against itself (same seed, same samples) ties exactly."""
    from posttrain.cli import main
    from posttrain.config.schema import TinyModelConfig
    from posttrain.models.tiny import build_tiny_model
    from tests.conftest import TINY

    fresh = tmp_path / "fresh"
    for part in build_tiny_model(TinyModelConfig(**TINY)):
        part.save_pretrained(fresh)
    task = TASK_OVERRIDE.removeprefix("data.task=")
    out = tmp_path / "eval"
    assert main(["eval", str(ROOT / "eval" / "arithmetic_rm_pairs.yaml"), "--models", str(reward_model),
                 "--out", str(out / "pairs"), "--set", "limit=200", f"data.task={task}"]) == 0
    pairs = json.loads((out / "pairs" / "results.json").read_text())[0]["metrics"]
    trained = read_metrics(reward_model / "metrics.jsonl")[-1]
    assert pairs["pair_accuracy"] == pytest.approx(trained["eval/accuracy"], abs=1e-6)
    assert main(["eval", str(ROOT / "eval" / "arithmetic_win_rate.yaml"), "--models", str(sft_model), str(fresh),
                 "--out", str(out / "win"), "--set", "limit=40", f"data.task={task}", f"baseline={fresh}",
                 f"rewards=[{{name: reward_model, args: {{path: {reward_model}}}}}]"]) == 0
    win = {r["model"]: r["metrics"]["win_rate"] for r in json.loads((out / "win" / "results.json").read_text())}
    assert win[str(fresh)] == 0.5 and win[str(sft_model)] > 0.7, win
