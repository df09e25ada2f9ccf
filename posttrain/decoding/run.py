"""``posttrain decode``: generate from a base model with a decoding method, for one prompt or a file of
prompts, writing one jsonl line per sample and reporting what the method cost."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from posttrain.config.schema import DataConfig, ModelConfig
from posttrain.data.loading import load_rows
from posttrain.data.prompts import Example, tokenize_examples
from posttrain.decoding.methods import DecodeSpec, build_decoder
from posttrain.models.loading import context_length, load_policy
from posttrain.progress import ProgressReporter
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine


@dataclass
class DecodeReport:
    samples: list[dict[str, Any]]
    seconds: float
    evals_per_token: float | None
    kl_bound: float | None


def read_prompts(data: DataConfig, single: str | None, tokenizer: Any, context: int,
                 max_new_tokens: int) -> list[Example]:
    rows, origin = ([{data.prompt_field: single}], "--prompt") if single is not None else \
        load_rows(data, data.split, (data.prompt_field,))
    return tokenize_examples(rows, origin, tokenizer, data, context, max_new_tokens)


def run_decode(model_path: str, spec: DecodeSpec, data: DataConfig, single: str | None, sampling: SamplingParams,
               num_samples: int, seed: int, out: str | None, batch_size: int = 32,
               progress: bool = True) -> DecodeReport:
    model, tokenizer = load_policy(ModelConfig(path=model_path))
    model.eval()
    examples = read_prompts(data, single, tokenizer, context_length(model), sampling.max_new_tokens)
    answers = {tuple(e.prompt_ids): e.answer for e in examples}
    engine = build_decoder(spec, model, tokenizer, HFRolloutEngine(model, tokenizer, batch_size * spec.n),
                           batch_size, answers)
    torch.manual_seed(seed)
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ProgressReporter(len(examples), 0, enabled=progress, label=f"decode {spec.label}") as bar:
        for start in range(0, len(examples), batch_size):
            part = examples[start : start + batch_size]
            batch = engine.generate([e.prompt_ids for e in part], num_samples, sampling)
            for row, completion in enumerate(batch.completions):
                example = part[row // num_samples]
                sample: dict[str, Any] = {"prompt": example.prompt, "sample": row % num_samples,
                                          "completion": completion}
                if example.answer:
                    sample["answer"] = example.answer
                for key in ("best_of_n_score", "guide_values"):
                    if key in batch.metadata:
                        sample[key] = batch.metadata[key][row]
                samples.append(sample)
            bar.update(min(start + batch_size, len(examples)), {})
    seconds = time.perf_counter() - started
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w") as handle:
            for sample in samples:
                handle.write(json.dumps(sample) + "\n")
    cost = getattr(engine, "cost", None)
    return DecodeReport(samples, seconds, cost.evals_per_token if cost else None, getattr(engine, "kl_bound", None))
