"""Run in a 2-process launch by tests/integration/test_vllm_engine.py: the two processes share one
tensor-parallel vLLM engine and check it against the HF engine and against itself; writes
``ok`` to the folder given as the argument when every check holds."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from posttrain.config.schema import TinyModelConfig, VLLMConfig
from posttrain.models.tiny import build_tiny_model
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine
from posttrain.rollout.vllm_engine import VLLMRolloutEngine
from tests.conftest import TINY

PROMPTS = ["12+34=", "5+7=", "99+1=", "40-3=", "7+8=", "61-16="]


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, tokenizer = build_tiny_model(TinyModelConfig(**TINY))
    engine = VLLMRolloutEngine(model, tokenizer, VLLMConfig(tensor_parallel_size=2), max_model_len=128)
    ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    greedy = SamplingParams(max_new_tokens=6, greedy=True)
    # each process its own prompts, as in training: the shared engine still answers each correctly
    mine = ids[rank * 3:(rank + 1) * 3]
    expected = HFRolloutEngine(model, tokenizer).generate(mine, 1, greedy).response_ids
    assert torch.equal(engine.generate(mine, 1, greedy).response_ids, expected), "greedy differs from HF"
    # a process's samples are those its rows get in one whole-batch call (row-offset seeds)
    sampled = SamplingParams(max_new_tokens=6, seed=100)
    whole = engine.generate(ids, 2, sampled).response_ids
    own = engine.generate(mine, 2, replace(sampled, seed=100 + rank * 3 * 2)).response_ids
    width = own.shape[1]
    assert torch.equal(own, whole[rank * 6:(rank + 1) * 6, :width]), "samples depend on which process drew them"
    # a pushed update reaches both shards
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param, generator=torch.Generator().manual_seed(1)))
    engine.sync_weights(model)
    assert engine.check_weights(model) < 1e-4
    if rank == 0:
        (out / "ok").write_text("ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
