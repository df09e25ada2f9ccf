"""``posttrain eval``: a fresh tiny model and the SFT-ed one on the arithmetic suites, side by side;
reproducible samples; HumanEval scored in the sandbox; bad suites and data named in errors."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from posttrain.cli import main
from posttrain.config.loading import ConfigError
from posttrain.config.schema import ModelConfig, TinyModelConfig
from posttrain.evaluation import harness
from posttrain.evaluation.harness import evaluate_suite
from posttrain.evaluation.metrics import pass_at_k
from posttrain.evaluation.suite import load_suite
from posttrain.models.loading import load_policy
from posttrain.models.tiny import build_tiny_model
from posttrain.rollout.hf import HFRolloutEngine
from tests.conftest import TINY

pytestmark = pytest.mark.integration

EVAL = Path(__file__).parents[2] / "eval"


@pytest.fixture(scope="module")
def fresh_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fresh")
    model, tokenizer = build_tiny_model(TinyModelConfig(**TINY))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_eval_compares_models_side_by_side(fresh_model: Path, sft_model: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    code = main(["eval", str(EVAL / "arithmetic.yaml"), str(EVAL / "arithmetic_sampled.yaml"),
                 "--models", str(fresh_model), str(sft_model), "--out", str(out), "--set", "limit=60"])
    assert code == 0
    table = capsys.readouterr().out
    assert "arithmetic: accuracy" in table and "arithmetic_sampled: pass@8" in table
    results = {(r["model"], r["suite"]): r["metrics"] for r in json.loads((out / "results.json").read_text())}
    before, after = results[(str(fresh_model), "arithmetic")], results[(str(sft_model), "arithmetic")]
    assert before["problems"] == after["problems"] == 60
    assert before["accuracy"] < 0.05 and after["accuracy"] >= 0.2  # the SFT model answers, the fresh one does not
    sampled = results[(str(sft_model), "arithmetic_sampled")]
    assert sampled["pass@1"] <= sampled["pass@4"] <= sampled["pass@8"]
    # the per-sample file holds what the metrics were computed from
    samples_file = out / harness.folder_name(str(sft_model)) / "arithmetic_sampled.samples.jsonl"
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == 60 * 8
    correct = [sum(s["correct"] for s in samples if s["problem"] == p) for p in range(60)]
    assert sampled["pass@4"] == pytest.approx(sum(pass_at_k(8, c, 4) for c in correct) / 60)


def test_sampled_evaluation_is_reproducible(sft_model: Path) -> None:
    suite = load_suite(EVAL / "arithmetic_sampled.yaml", ["limit=20"])
    model, tokenizer = load_policy(ModelConfig(path=str(sft_model)))
    engine = HFRolloutEngine(model.eval(), tokenizer)
    first = evaluate_suite(engine, tokenizer, 256, suite, "sft", progress=False)
    second = evaluate_suite(engine, tokenizer, 256, suite, "sft", progress=False)
    assert [s["completion"] for s in first.samples] == [s["completion"] for s in second.samples]


def test_humaneval_canonical_solutions_pass_in_the_sandbox() -> None:
    """The suite's scoring path on the real problems: each problem's first 'sample' is its canonical
    solution, the second a wrong body; generation is replaced, tokenisation and scoring are real."""
    from posttrain.data.tasks.humaneval import humaneval_rows

    suite = load_suite(EVAL / "humaneval.yaml",
                       ["limit=6", "sampling.num_samples=2", "k=[1, 2]", "sampling.max_new_tokens=16"])
    solutions = [row["canonical_solution"] for row in humaneval_rows()[:6]]

    class CannedEngine:
        def generate(self, prompts: list[list[int]], num_samples: int, params: object) -> SimpleNamespace:
            assert num_samples == 2
            return SimpleNamespace(completions=[c for s in solutions for c in (s, "    return None\n")])

    tokenizer = build_tiny_model(TinyModelConfig(**TINY))[1]
    result = evaluate_suite(CannedEngine(), tokenizer, 4096, suite, "canned", progress=False)
    assert result.metrics["problems"] == 6
    assert result.metrics["pass@1"] == pytest.approx(0.5) and result.metrics["pass@2"] == pytest.approx(1.0)
    assert [s["correct"] for s in result.samples] == [True, False] * 6


def test_bad_suites_and_data_are_named(fresh_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {task: {name: arithmetic}}\nmetrcs: [accuracy]\n")
    with pytest.raises(ConfigError, match="metrcs: unknown key; did you mean 'metrics'"):
        load_suite(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"name: x\ndata: {{path: {tmp_path / 'nope.jsonl'}}}\n")
    assert main(["eval", str(missing), "--models", str(fresh_model), "--out", str(tmp_path / "o")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    no_tokenizer = tmp_path / "weights_only"
    build_tiny_model(TinyModelConfig(**TINY))[0].save_pretrained(no_tokenizer)
    assert main(["eval", str(EVAL / "arithmetic.yaml"), "--models", str(no_tokenizer), "--out",
                 str(tmp_path / "o2")]) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_recipe_suites_are_logged_during_training_without_changing_it(tmp_path: Path) -> None:
    """Suites run every eval_every steps into the run's metrics; their seeded sampling happens in a
    forked RNG, so the training samples (and so rewards and losses) are those of a run without them."""
    from posttrain.config import validate_recipe
    from posttrain.trainers import train
    from posttrain.trainers.metrics import read_metrics
    from tests.conftest import grpo_recipe

    suite = tmp_path / "small.yaml"
    suite.write_text((EVAL / "arithmetic_sampled.yaml").read_text() + "limit: 10\n")
    runs = {}
    for name, suites in (("plain", []), ("suites", [str(suite)])):
        recipe = validate_recipe(grpo_recipe(tmp_path / name, trainer={
            "steps": 2, "batch_size": 4, "eval_every": 1, "eval_samples": 10, "eval_suites": suites}))
        train(recipe)
        runs[name] = read_metrics(tmp_path / name / "metrics.jsonl")
    assert [r["step"] for r in runs["suites"]] == [0, 1, 2]
    assert all(0 <= r["eval/arithmetic_sampled/pass@8"] <= 1 for r in runs["suites"])
    for plain, with_suites in zip(runs["plain"][1:], runs["suites"][1:]):
        assert with_suites["loss"] == plain["loss"] and with_suites["reward/mean"] == plain["reward/mean"]
    # the checkpoint is a plain transformers folder, ready for other tools (e.g. lm-evaluation-harness)
    folder = tmp_path / "suites" / "checkpoints" / "step-000002" / "model"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("12+34=", return_tensors="pt").input_ids
    assert model.generate(ids, min_new_tokens=3, max_new_tokens=3, do_sample=False).shape == (1, ids.shape[1] + 3)
