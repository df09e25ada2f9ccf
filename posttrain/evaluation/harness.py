"""``posttrain eval``: models × suites → per-sample jsonl, results JSON and a markdown table.

Generation goes through the rollout engine training uses, with the suite's seed, so a rerun
reproduces the samples; scoring goes through the suite's rewards (the verifiers, the sandboxed
code runner, reward models).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from posttrain.config.schema import ModelConfig, RolloutConfig
from posttrain.data.loading import DataError, load_rows
from posttrain.data.preference import usable_pairs
from posttrain.data.prompts import Example, tokenize_examples
from posttrain.decoding.methods import DecodeSpec, build_decoder
from posttrain.evaluation.metrics import majority_at_k, pass_at_k, win_rate
from posttrain.evaluation.suite import SuiteConfig
from posttrain.models.loading import context_length, load_policy, load_tokenizer
from posttrain.models.reward_model import load_reward_model, score_texts
from posttrain.progress import ProgressReporter
from posttrain.rewards import RewardSet
from posttrain.rewards.answer import extract_answer
from posttrain.rollout.base import RolloutEngine, SamplingParams
from posttrain.rollout.factory import build_engine


@dataclass
class SuiteResult:
    suite: str
    model: str
    metrics: dict[str, float]
    samples: list[dict[str, Any]] = field(repr=False, default_factory=list)


def _prompt_rows(suite: SuiteConfig, rows: list[dict[str, Any]], origin: str) -> list[dict[str, Any]]:
    """Rows whose prompt field holds the suite's prompt (the template filled from the row)."""
    if suite.prompt_template is None:
        return rows
    field_name = suite.data.prompt_field
    filled = []
    for index, row in enumerate(rows):
        try:
            filled.append({**row, field_name: suite.prompt_template.format(**row)})
        except KeyError as err:
            raise DataError(f"{origin}: row {index} has no field {err} that prompt_template uses "
                            f"(columns: {sorted(row)})") from None
    return filled


def evaluate_suite(engine: RolloutEngine, tokenizer: PreTrainedTokenizerBase, context: int, suite: SuiteConfig,
                   model_label: str, progress: bool = True, rewards: RewardSet | None = None,
                   examples: list[Example] | None = None) -> SuiteResult:
    """Generate the suite's samples with ``engine`` (a model of ``context`` tokens) and score them
    with ``rewards`` (default: built from the suite; a caller evaluating repeatedly builds them once).

    The suite's seed drives the sampling inside a forked RNG, so results are reproducible and a
    training run that evaluates between steps draws the same training samples as one that does not.
    """
    if examples is None:
        examples = suite_examples(suite, tokenizer, context)
    sampling = suite.sampling
    params = SamplingParams(max_new_tokens=sampling.max_new_tokens, temperature=sampling.temperature or 1.0,
                            top_p=sampling.top_p, greedy=sampling.temperature == 0)
    n = sampling.num_samples
    completions: list[str] = []
    chunk = max(1, sampling.batch_size // n)
    with torch.random.fork_rng(devices=[]), ProgressReporter(len(examples), 0, enabled=progress,
                                                            label=f"eval {suite.name} {model_label}") as bar:
        torch.manual_seed(sampling.seed)
        for start in range(0, len(examples), chunk):
            part = examples[start : start + chunk]
            completions += engine.generate([e.prompt_ids for e in part], n, params).completions
            bar.update(min(start + chunk, len(examples)), {})
    completions = [cut_at_stop(c, sampling.stop) for c in completions]
    prompts = [e.prompt for e in examples for _ in range(n)]
    answers = [e.answer for e in examples for _ in range(n)]
    scored = (rewards or RewardSet(suite.rewards)).score(prompts, completions, answers,
                                            rows=[e.fields for e in examples for _ in range(n)])
    totals = scored.totals.tolist()
    correct = [t >= suite.correct_threshold for t in totals]
    votes = [extract_answer(c, suite.vote) for c in completions]
    metrics = _metrics(suite, correct, votes, totals, n)
    metrics["reward_errors"] = float(sum(scored.errors.values()))
    samples = [{"problem": i // n, "sample": i % n, "prompt": prompts[i], "completion": completions[i],
                "answer": answers[i], "reward": totals[i], "correct": correct[i], "vote": votes[i]}
               for i in range(len(completions))]
    return SuiteResult(suite.name, model_label, metrics, samples)


def suite_examples(suite: SuiteConfig, tokenizer: PreTrainedTokenizerBase, context: int) -> list[Example]:
    """The suite's problems (after its limit), prompts filled in and tokenised."""
    data = suite.data
    required = () if suite.prompt_template else (data.prompt_field,)
    rows, origin = load_rows(data, data.split, required)
    rows = _prompt_rows(suite, rows[: suite.limit] if suite.limit else rows, origin)
    return tokenize_examples(rows, origin, tokenizer, data, context, suite.sampling.max_new_tokens)


def cut_at_stop(completion: str, stop: list[str]) -> str:
    """The completion up to the first occurrence of any stop string."""
    cut = min((i for i in (completion.find(s) for s in stop) if i >= 0), default=len(completion))
    return completion[:cut]


def _metrics(suite: SuiteConfig, correct: list[bool], votes: list[str | None], totals: list[float],
             n: int) -> dict[str, float]:
    problems = len(correct) // n
    per_problem = [(correct[i * n : (i + 1) * n], votes[i * n : (i + 1) * n]) for i in range(problems)]
    metrics: dict[str, float] = {"problems": float(problems), "samples": float(len(correct))}
    for metric in suite.metrics:
        if metric == "accuracy":
            metrics["accuracy"] = sum(correct) / max(1, len(correct))
        elif metric == "mean_reward":
            metrics["mean_reward"] = sum(totals) / max(1, len(totals))
        elif metric == "pass@k":
            for k in suite.k:
                metrics[f"pass@{k}"] = sum(pass_at_k(n, sum(c), k) for c, _ in per_problem) / max(1, problems)
        elif metric == "maj@k":
            for k in suite.k:
                metrics[f"maj@{k}"] = sum(majority_at_k(v, c, k) for c, v in per_problem) / max(1, problems)
    if suite.vote != "exact" and "maj@k" in suite.metrics:
        metrics["vote_extraction_failures"] = float(sum(v is None for v in votes))
    return metrics


def evaluate_pairs(model: Any, tokenizer: PreTrainedTokenizerBase, suite: SuiteConfig, model_label: str,
                   progress: bool = True) -> SuiteResult:
    """A reward model's accuracy on given pairs: r(prompt + chosen) > r(prompt + rejected).
    Pairs with an empty side or identical sides are dropped and counted, as in training."""
    data = suite.data
    fields = (data.chosen_field, data.rejected_field) + (() if suite.prompt_template else (data.prompt_field,))
    rows, origin = load_rows(data, data.split, fields)
    rows = _prompt_rows(suite, rows[: suite.limit] if suite.limit else rows, origin)
    examples = tokenize_examples(rows, origin, tokenizer, data, context_length(model), 1)
    prompts = [e.prompt for e in examples]
    chosen = [str(e.fields[data.chosen_field]) for e in examples]
    rejected = [str(e.fields[data.rejected_field]) for e in examples]
    keep, empty, identical = usable_pairs(prompts, chosen, rejected)
    if not keep:
        raise DataError(f"{origin}: no usable pairs ({empty} with an empty side, {identical} identical)")
    texts = [prompts[i] + chosen[i] for i in keep] + [prompts[i] + rejected[i] for i in keep]
    size = suite.sampling.batch_size
    scores = []
    with ProgressReporter(len(texts), 0, enabled=progress, label=f"eval {suite.name} {model_label}") as bar:
        for start in range(0, len(texts), size):
            scores.append(score_texts(model, tokenizer, texts[start : start + size], size))
            bar.update(min(start + size, len(texts)), {})
    both = torch.cat(scores)
    good, bad = both[: len(keep)], both[len(keep) :]
    metrics = {"problems": float(len(keep)), "samples": float(len(keep)),
               "pair_accuracy": (good > bad).float().mean().item(), "margin": (good - bad).mean().item(),
               "pairs_dropped_empty": float(empty), "pairs_dropped_identical": float(identical)}
    samples = [{"pair": row, "prompt": prompts[i], "chosen": chosen[i], "rejected": rejected[i],
                "chosen_reward": good[row].item(), "rejected_reward": bad[row].item()}
               for row, i in enumerate(keep)]
    return SuiteResult(suite.name, model_label, metrics, samples)


class _Models:
    """One model path loaded at most once as a causal LM and once as a reward model."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.loaded: dict[str, tuple[Any, PreTrainedTokenizerBase]] = {}

    def causal_lm(self) -> tuple[Any, PreTrainedTokenizerBase]:
        if "lm" not in self.loaded:
            model, tokenizer = load_policy(ModelConfig(path=self.path))
            self.loaded["lm"] = (model.eval(), tokenizer)
        return self.loaded["lm"]

    def reward_model(self) -> tuple[Any, PreTrainedTokenizerBase]:
        if "rm" not in self.loaded:
            spec = ModelConfig(path=self.path)
            self.loaded["rm"] = (load_reward_model(spec).eval(), load_tokenizer(spec))
        return self.loaded["rm"]


def _generate_and_score(models: _Models, suite: SuiteConfig, engine_name: str, progress: bool,
                        decode: DecodeSpec) -> SuiteResult:
    """The suite on one model, decoded with ``decode`` (best-of-N draws through the rollout engine
    and may check the suite's reference answers)."""
    model, tokenizer = models.causal_lm()
    batch_size = suite.sampling.batch_size
    engine = build_engine(RolloutConfig(engine=engine_name, batch_size=batch_size * decode.n), model, tokenizer)
    context = context_length(model)
    examples = suite_examples(suite, tokenizer, context)
    if decode.method != "base":
        answers = {tuple(e.prompt_ids): e.answer for e in examples}
        engine = build_decoder(decode, model, tokenizer, engine, batch_size, answers)
    label = models.path if decode.method == "base" else f"{models.path} {decode.label}"
    result = evaluate_suite(engine, tokenizer, context, suite, label, progress, examples=examples)
    cost = getattr(engine, "cost", None)
    if cost is not None:
        result.metrics["evals_per_token"] = cost.evals_per_token
    return result


def run_eval(suites: list[SuiteConfig], models: list[str], out_dir: str | Path, progress: bool = True,
             engine: str = "hf", decode: DecodeSpec | None = None) -> list[SuiteResult]:
    """Every suite on every model, each decoded with ``decode`` (default: plain sampling); writes
    ``<out>/<model>/<suite>.samples.jsonl``, ``<out>/results.json`` and ``<out>/results.md``. A
    win-rate suite's baseline is evaluated once, with plain sampling, and compared per sample."""
    decode = decode or DecodeSpec()
    out = Path(out_dir)
    baselines: dict[tuple[str, str], SuiteResult] = {}
    results = []
    for model_path in models:
        loaded = _Models(model_path)
        folder = out / folder_name(model_path if decode.method == "base" else f"{model_path}_{decode.label}")
        folder.mkdir(parents=True, exist_ok=True)
        for suite in suites:
            if suite.scores_pairs:
                model, tokenizer = loaded.reward_model()
                result = evaluate_pairs(model, tokenizer, suite, model_path, progress)
            else:
                result = _generate_and_score(loaded, suite, engine, progress, decode)
            if suite.baseline is not None:
                key = (suite.name, suite.baseline)
                if key not in baselines:
                    baselines[key] = _generate_and_score(_Models(suite.baseline), suite, engine, progress, DecodeSpec())
                base = baselines[key]
                result.metrics["win_rate"] = win_rate([s["reward"] for s in result.samples],
                                                      [s["reward"] for s in base.samples])
                for sample, other in zip(result.samples, base.samples):
                    sample["baseline_completion"], sample["baseline_reward"] = other["completion"], other["reward"]
            with (folder / f"{folder_name(suite.name)}.samples.jsonl").open("w") as handle:
                for sample in result.samples:
                    handle.write(json.dumps(sample) + "\n")
            results.append(result)
        del loaded
    (out / "results.json").write_text(json.dumps(
        [{"suite": r.suite, "model": r.model, "metrics": r.metrics} for r in results], indent=2))
    (out / "results.md").write_text(format_table(results) + "\n")
    return results


def training_metrics(result: SuiteResult) -> dict[str, float]:
    """A suite's metrics as a training run logs them: ``eval/<suite>/<metric>``, counts left out."""
    return {f"eval/{result.suite}/{key}": value for key, value in result.metrics.items()
            if key not in ("problems", "samples")}


def _is_tally(key: str) -> bool:
    return key.endswith(("errors", "failures")) or key.startswith("pairs_dropped")


def _cell(key: str, value: float) -> str:
    if _is_tally(key):
        return f"{value:.0f}"
    if key in ("mean_reward", "margin", "evals_per_token"):
        return f"{value:.3f}"
    return f"{100 * value:.1f}%"


def format_table(results: list[SuiteResult]) -> str:
    """One row per model, one column per suite metric; counts, and tallies that stayed at zero for
    every model, are left to results.json."""
    columns: list[tuple[str, str]] = []
    for r in results:
        for key in r.metrics:
            if key in ("problems", "samples") or (r.suite, key) in columns:
                continue
            if not _is_tally(key) or any(o.metrics.get(key) for o in results if o.suite == r.suite):
                columns.append((r.suite, key))
    models = list(dict.fromkeys(r.model for r in results))
    lookup = {(r.model, r.suite): r.metrics for r in results}
    lines = ["| model | " + " | ".join(f"{s}: {k}" for s, k in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for model in models:
        cells = []
        for suite, key in columns:
            value = lookup.get((model, suite), {}).get(key)
            cells.append("" if value is None else _cell(key, value))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def folder_name(text: str) -> str:
    """A file-system-safe name for a model path, hub id or suite name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/")).strip("_") or "model"
