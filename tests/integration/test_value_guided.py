"""Value-guided decoding end to end on the shared SFT model: a value model trained on the frozen
model's samples learns (its error falls, it explains more of the returns), reloads with plain
transformers and guides `posttrain decode`; an IVO run switches to guided sampling in its second
round and resumes inside it; `posttrain eval` evaluates decoding methods like models."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

from posttrain.cli import main
from posttrain.config import load_recipe
from posttrain.trainers import train
from posttrain.trainers.metrics import read_metrics
from tests.conftest import TASK_OVERRIDE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def recipe(sft_model: Path, out: Path, *overrides: str):
    return load_recipe(ROOT / "recipes" / "vas.yaml", [
        f"model.path={sft_model}", TASK_OVERRIDE, f"trainer.output_dir={out}", "logging.progress=false",
        "trainer.eval_every=0", "trainer.checkpoint_every=0", *overrides])


@pytest.fixture(scope="module")
def value_model(sft_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vas")
    result = train(recipe(sft_model, out, "trainer.steps=40", "trainer.batch_size=32"))
    assert result.status == "completed"
    return out


def test_value_model_learns_and_leaves_the_base_model_alone(value_model: Path, sft_model: Path) -> None:
    metrics = read_metrics(value_model / "metrics.jsonl")
    early = sum(m["loss"] for m in metrics[:5]) / 5
    late = sum(m["loss"] for m in metrics[-10:]) / 10
    assert late < early, (early, late)  # a fresh value head starts far off
    ev_early = sum(m["value/explained_variance"] for m in metrics[:5]) / 5
    ev_late = sum(m["value/explained_variance"] for m in metrics[-10:]) / 10
    assert ev_late > ev_early, (ev_early, ev_late)
    saved = value_model / "checkpoints" / "step-000040" / "model"
    model = AutoModelForTokenClassification.from_pretrained(saved)
    assert model.config.num_labels == 1 and model.config.value_head["head"] == "scalar"
    # the saved recipe is the value model's; the base model in model.path is unchanged
    base = AutoModelForCausalLM.from_pretrained(sft_model)
    assert base.config.architectures == ["Qwen2ForCausalLM"]


def test_decode_with_the_value_model(value_model: Path, sft_model: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{a}+{b}=", "answer": str(a + b)}) + "\n"
                               for a, b in [(12, 34), (58, 27), (40, 45)]))
    out = tmp_path / "vas.jsonl"
    assert main(["decode", "--model", str(sft_model), "--prompts", str(prompts), "--method", "vas",
                 "--value-model", f"{value_model}=4", "--num-samples", "3", "--max-new-tokens", "5",
                 "--out", str(out)]) == 0
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(samples) == 9 and all(len(s["guide_values"]) >= 1 for s in samples)
    # k = 1 leaves nothing to choose: guided decoding is the base model's greedy decoding
    greedy, top1 = tmp_path / "greedy.jsonl", tmp_path / "top1.jsonl"
    assert main(["decode", "--model", str(sft_model), "--prompts", str(prompts), "--temperature", "0",
                 "--max-new-tokens", "5", "--out", str(greedy)]) == 0
    assert main(["decode", "--model", str(sft_model), "--prompts", str(prompts), "--method", "vas",
                 "--value-model", f"{value_model}=50", "--top-k", "1", "--max-new-tokens", "5",
                 "--out", str(top1)]) == 0
    completions = [[json.loads(line)["completion"] for line in f.read_text().splitlines()] for f in (greedy, top1)]
    assert completions[0] == completions[1]


def test_decode_errors_name_the_problem(sft_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--model", str(sft_model), "--prompt", "1+1=", "--method", "vas"]) == 2
    assert "needs at least one --value-model" in capsys.readouterr().err
    assert main(["decode", "--model", str(sft_model), "--prompt", "1+1=", "--method", "vas",
                 "--value-model", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_ivo_second_round_samples_from_the_guided_policy_and_resumes(sft_model: Path, tmp_path: Path) -> None:
    overrides = ("algorithm.name=ivo", "algorithm.ivo_rounds=2", "trainer.steps=8", "trainer.batch_size=8",
                 "trainer.checkpoint_every=6", "trainer.save_total_limit=null")
    whole = tmp_path / "whole"
    assert train(recipe(sft_model, whole, *overrides)).status == "completed"
    metrics = read_metrics(whole / "metrics.jsonl")
    assert [m["ivo/round"] for m in metrics] == [0, 0, 0, 0, 1, 1, 1, 1]
    checkpoint = whole / "checkpoints" / "step-000006"
    assert (checkpoint / "ivo_guide" / "config.json").is_file()
    # resuming inside round 1 restores its guide: the remaining steps match the uninterrupted run
    resumed = tmp_path / "resumed"
    train(recipe(sft_model, resumed, *overrides, f"trainer.resume={checkpoint}"))
    again = read_metrics(resumed / "metrics.jsonl")
    assert [m["step"] for m in again] == [7, 8]
    for a, b in zip(metrics[6:], again):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["reward/mean"] == b["reward/mean"]
    final = [AutoModelForTokenClassification.from_pretrained(d / "checkpoints" / "step-000008" / "model")
             for d in (whole, resumed)]
    for (name, p), (_, q) in zip(final[0].named_parameters(), final[1].named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_eval_runs_decoding_methods_like_models(value_model: Path, sft_model: Path, tmp_path: Path) -> None:
    suite = str(ROOT / "eval" / "arithmetic_sampled.yaml")
    out = {}
    for name, extra in {"base": [], "bon": ["--method", "best-of-n", "--n", "4", "--reward", "exact_answer"],
                        "vas": ["--method", "vas", "--value-model", f"{value_model}=2"]}.items():
        assert main(["eval", suite, "--models", str(sft_model), "--out", str(tmp_path / name),
                     "--set", "limit=40", "sampling.num_samples=2", "k=[1,2]", *extra]) == 0
        out[name] = json.loads((tmp_path / name / "results.json").read_text())[0]
    assert out["vas"]["model"].endswith("vas(β=2, k=10)")
    # best-of-4 judged by the reference answer is right whenever any of its 4 draws is
    assert out["bon"]["metrics"]["accuracy"] > out["base"]["metrics"]["accuracy"]
