"""The offline preference family end to end on the arithmetic task, from the shared SFT model:
DPO, IPO, Pre-DPO (two stages), QRPO (preparation + training) and DPO with LoRA."""

from pathlib import Path

import pytest
import torch

from posttrain.config import load_recipe
from posttrain.data.qrpo_prep import write_qrpo_data
from posttrain.models.loading import load_causal_lm
from posttrain.trainers import build_trainer, train
from posttrain.trainers import offline as offline_module
from posttrain.trainers.metrics import read_metrics
from tests.conftest import TASK_OVERRIDE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def recipe(name: str, sft_model: Path, out: Path, cache: Path, *overrides: str):
    return load_recipe(ROOT / "recipes" / f"{name}.yaml", [
        f"model.path={sft_model}", TASK_OVERRIDE, "trainer.steps=80", "trainer.eval_every=80",
        "trainer.eval_samples=200", f"trainer.output_dir={out}", f"reference.cache_dir={cache}",
        "logging.progress=false", *overrides])


def evals(run: Path) -> list[dict]:
    return [m for m in read_metrics(run / "metrics.jsonl") if "eval/accuracy" in m]


@pytest.mark.parametrize("name", ["dpo", "ipo"])
def test_pairwise_losses_raise_held_out_accuracy(name: str, sft_model: Path, tmp_path: Path) -> None:
    assert train(recipe(name, sft_model, tmp_path / "run", tmp_path / "cache")).status == "completed"
    first, last = evals(tmp_path / "run")[0], evals(tmp_path / "run")[-1]
    assert first["eval/loss"] == pytest.approx(0.6931472 if name == "dpo" else 25.0, rel=1e-4)  # π = π_ref
    assert last["eval/preference_accuracy"] >= 0.75, last
    assert last["eval/loss"] < first["eval/loss"] - 0.05, last


def test_reference_log_probs_are_computed_once_per_dataset(sft_model: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = offline_module.score_completions

    def counting(*args, **kwargs):
        calls.append(args[-2])
        return real(*args, **kwargs)

    monkeypatch.setattr(offline_module, "score_completions", counting)
    cache = tmp_path / "cache"
    first = build_trainer(recipe("dpo", sft_model, tmp_path / "a", cache, "trainer.steps=1"))
    first.setup()
    assert len(calls) == 2 and len(list(cache.glob("*.pt"))) == 2  # train and held-out pairs
    second = build_trainer(recipe("dpo", sft_model, tmp_path / "b", cache, "trainer.steps=1"))
    second.setup()
    assert len(calls) == 2  # loaded, not recomputed
    torch.testing.assert_close(first.cached_ref["train"], second.cached_ref["train"])
    other = build_trainer(recipe("dpo", sft_model, tmp_path / "c", cache, "trainer.steps=1",
                                 "data.max_completion_length=2"))
    other.setup()
    assert len(calls) == 4  # other tokens, other key
    uncached = build_trainer(recipe("dpo", sft_model, tmp_path / "d", cache, "trainer.steps=1",
                                    "reference.logprob_cache=false"))
    assert uncached.run().status == "completed" and len(calls) == 4 and uncached.reference is not None


def test_pre_dpo_runs_both_stages_into_separate_folders(sft_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "pre"
    spec = recipe("pre_dpo", sft_model, out, tmp_path / "cache", "trainer.steps=40", "trainer.eval_every=40",
                  "algorithm.guide_steps=30")
    result = train(spec)
    assert result.status == "completed" and result.output_dir == out / "policy"
    guide = out / "guide" / "checkpoints" / "step-000030" / "model"
    assert guide.is_dir() and (out / "policy" / "checkpoints" / "step-000040").is_dir()
    stage2 = load_recipe(out / "policy" / "recipe.yaml")
    assert stage2.reference.path == str(guide) and stage2.model.path == str(sft_model)
    # the guide already knows the pairs: against it the start policy ranks them worse than chance
    first = evals(out / "policy")[0]
    assert first["eval/preference_accuracy"] < 0.5 and first["eval/loss"] > 0.6931472
    # a rerun with resume goes straight to the second stage: the guide is not retrained
    guide_mtime = guide.stat().st_mtime
    rerun = train(spec.model_copy(update={"trainer": spec.trainer.model_copy(update={"resume": "auto"})}))
    assert rerun.step == 40 and guide.stat().st_mtime == guide_mtime


def test_qrpo_prepares_reference_rewards_and_learns_the_quantile_ordering(sft_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "qrpo_data"
    prep = recipe("qrpo", sft_model, tmp_path / "unused", tmp_path / "cache")
    counts = write_qrpo_data(prep, data, samples=4)
    assert counts == {"train": 6000, "test": 400}  # both sides of every pair
    run = tmp_path / "run"
    spec = recipe("qrpo", sft_model, run, tmp_path / "cache", "data.task=null", f"data.path={data}",
                  "trainer.steps=100", "trainer.eval_every=100")
    assert train(spec).status == "completed"
    first, last = evals(run)[0], evals(run)[-1]
    assert last["eval/loss"] < first["eval/loss"]
    # the log-ratio starts flat (π = π_ref) and comes to follow the quantile rewards: measured 0.14 at
    # step 25, 0.22-0.26 from step 50 to 200 (2 threads; 0.3 at 100 steps single-threaded)
    assert abs(first["eval/beta_log_ratio_corr_with_quantile"]) < 0.05
    assert last["eval/beta_log_ratio_corr_with_quantile"] > 0.15, last


def test_dpo_with_lora_uses_the_base_weights_as_reference(sft_model: Path, tmp_path: Path) -> None:
    spec = recipe("dpo", sft_model, tmp_path / "run", tmp_path / "cache", "model.lora.enabled=true",
                  "trainer.lr=1e-3")
    trainer = build_trainer(spec)
    result = trainer.run()
    assert result.status == "completed" and trainer.reference is None  # no second model was loaded
    base = load_causal_lm(spec.model).eval()
    pairs = trainer.examples[:8]
    with torch.no_grad():
        expected = offline_module.completion_logp_sums(base, [p.prompt_ids for p in pairs],
                                                       [p.chosen_ids for p in pairs], 0, torch.device("cpu"))[0]
    torch.testing.assert_close(trainer.cached_ref["train"][:8], expected, atol=1e-5, rtol=0)
    last = evals(tmp_path / "run")[-1]
    assert last["eval/preference_accuracy"] >= 0.75, last
