"""The vllm-server engine's pure parts: which parameters are fingerprinted, how tensor-parallel
shards combine, what a push sends for a tied model, and how workers are laid out."""

from types import SimpleNamespace

import pytest
import torch

from posttrain.config.schema import TinyModelConfig, VLLMServerConfig
from posttrain.models.tiny import build_tiny_model
from posttrain.rollout.server_launcher import ServerOptions, worker_commands
from posttrain.rollout.vllm_server import (
    RolloutServerError,
    VLLMServerEngine,
    _weight_source,
    combine_shards,
    fingerprint_plan,
)
from posttrain.rollout.weight_transfer import reachable_address
from tests.conftest import TINY

pytestmark = pytest.mark.unit

QWEN2 = [f"model.layers.{i}.{part}" for i in range(2) for part in (
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.bias", "self_attn.v_proj.bias", "self_attn.o_proj.weight", "mlp.gate_proj.weight",
    "mlp.up_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight")]


def test_the_plan_fuses_projections_as_vllm_does_and_covers_the_last_layer_and_the_ends() -> None:
    plan = fingerprint_plan(["model.embed_tokens.weight", *QWEN2, "model.norm.weight", "lm_head.weight"])
    assert plan["model.layers.1.self_attn.qkv_proj.weight"] == [
        "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
        "model.layers.1.self_attn.v_proj.weight"]
    assert plan["model.layers.1.mlp.gate_up_proj.weight"] == ["model.layers.1.mlp.gate_proj.weight",
                                                             "model.layers.1.mlp.up_proj.weight"]
    assert plan["model.layers.1.self_attn.o_proj.weight"] == ["model.layers.1.self_attn.o_proj.weight"]
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= plan.keys()
    assert not any(".layers.0." in name for name in plan)
    assert len(plan) == 10  # qkv weight and bias, o, gate_up, down, two norms; embedding, final norm, head
    assert fingerprint_plan(["transformer.wte.weight"]) == {}


def test_shards_are_added_when_they_split_a_parameter_and_taken_once_when_replicated() -> None:
    trainer = {"split": [10.0, 30.0, 8.0], "replicated": [4.0, 4.0, 4.0], "padded": [1.0, 1.0, 6.0]}
    workers = [{"split": [4.0, 10.0, 4.0, "float32"], "replicated": [4.0, 4.0, 4.0, "float32"],
                "padded": [1.0, 1.0, 4.0, "float32"]},
               {"split": [6.0, 20.0, 4.0, "float32"], "replicated": [4.0, 4.0, 4.0, "float32"],
                "padded": [0.0, 0.0, 4.0, "float32"]}]
    assert combine_shards(workers, trainer) == {"split": (10.0, 30.0), "replicated": (4.0, 4.0)}
    # a repacked layer reports no elements and drops out
    assert combine_shards([{"split": [0.0, 0.0, 0.0, "float32"]}], trainer) == {}


def test_a_tied_output_layer_is_pushed_under_both_names() -> None:
    model, _ = build_tiny_model(TinyModelConfig(**TINY))
    assert model.config.tie_word_embeddings
    meta, stream = _weight_source(model, None)
    pushed = list(stream)
    assert [name for name, _, _ in meta] == [name for name, _ in pushed]
    names = [name for name, _ in pushed]
    assert names.count("lm_head.weight") == 1 and names.count("model.embed_tokens.weight") == 1
    assert names.index("lm_head.weight") == names.index("model.embed_tokens.weight") + 1
    tensors = dict(pushed)
    assert tensors["lm_head.weight"] is tensors["model.embed_tokens.weight"]
    assert len(pushed) == len(list(model.named_parameters())) + 1


def test_workers_get_their_own_cores_or_gpus() -> None:
    cpu = worker_commands(ServerOptions(model="m", workers=2, port=9000, devices=""), cores=4)
    assert [env["VLLM_CPU_OMP_THREADS_BIND"] for _, env in cpu] == ["0-1", "2-3"]
    tensor_parallel = worker_commands(ServerOptions(model="m", workers=2, tensor_parallel_size=2, devices=""), cores=8)
    assert [env["VLLM_CPU_OMP_THREADS_BIND"] for _, env in tensor_parallel] == ["0-1|2-3", "4-5|6-7"]
    assert all('{"backend": "gloo"}' in command for command, _ in cpu)
    assert [command[command.index("--port") + 1] for command, _ in cpu] == ["9000", "9001"]
    gpu = worker_commands(ServerOptions(model="m", workers=2, tensor_parallel_size=2, devices="0,1,2,3"))
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in gpu] == ["0,1", "2,3"]
    assert all('{"backend": "nccl"}' in command for command, _ in gpu)
    with pytest.raises(ValueError, match="need 4 GPUs; 2 are visible"):
        worker_commands(ServerOptions(model="m", workers=2, tensor_parallel_size=2, devices="0,1"))


def test_the_trainer_address_is_loopback_for_local_servers() -> None:
    assert reachable_address(["http://127.0.0.1:8000", "http://localhost:8001"]) == "127.0.0.1"


class _Answer:
    def __init__(self, status_code: int, body: dict | None = None) -> None:
        self.status_code, self.body, self.text = status_code, body, ""

    def json(self) -> dict | None:
        return self.body


def test_a_server_without_the_weight_info_route_reports_no_version() -> None:
    """Older vLLM releases have no /weight_info: the restart check skips them instead of failing."""
    engine = SimpleNamespace(options=VLLMServerConfig())
    old = SimpleNamespace(url="http://old", session=SimpleNamespace(get=lambda url, timeout: _Answer(404)))
    new = SimpleNamespace(url="http://new", session=SimpleNamespace(
        get=lambda url, timeout: _Answer(200, {"weight_version": "3"})))
    assert VLLMServerEngine._weight_version(engine, old) is None
    assert VLLMServerEngine._weight_version(engine, new) == "3"
    broken = SimpleNamespace(url="http://broken", session=SimpleNamespace(get=lambda url, timeout: _Answer(500)))
    with pytest.raises(RolloutServerError, match="http://broken/weight_info answered HTTP 500"):
        VLLMServerEngine._weight_version(engine, broken)


class _Broadcaster:
    """Takes ``take`` tensors of a push, then fails the way a lost peer makes gloo fail."""

    backend = "nccl"  # no receive-state check to call
    urls: list[str] = []

    def __init__(self, take: int | None) -> None:
        self.take = take

    def push(self, tensors, metadata, version: str) -> None:
        for i, _ in enumerate(tensors):
            if self.take is not None and i + 1 == self.take:
                raise RuntimeError("Connection closed by peer")


def _engine_pushing(monkeypatch: pytest.MonkeyPatch, weights: list, broadcaster: _Broadcaster) -> VLLMServerEngine:
    import posttrain.rollout.vllm_server as module

    monkeypatch.setattr(module, "_weight_source", lambda model, parallel: ([], iter(weights)))
    engine = object.__new__(VLLMServerEngine)
    engine.parallel, engine.plan, engine.engine_dtypes, engine.broadcaster = None, {}, {}, broadcaster
    return engine


def test_a_push_broken_by_the_transport_is_retried_after_the_gathers_finish(monkeypatch) -> None:
    """The other processes of a ZeRO-3 launch are still gathering: the rest of the stream is drained."""
    drawn: list[str] = []

    def weights():
        for i in range(5):
            drawn.append(f"w{i}")
            yield f"w{i}", torch.zeros(2)

    engine = _engine_pushing(monkeypatch, weights(), _Broadcaster(take=2))
    failure = engine._push(None, "1")
    assert isinstance(failure, str) and "Connection closed by peer" in failure  # retried
    assert drawn == [f"w{i}" for i in range(5)]


def test_a_failing_gather_is_not_mistaken_for_a_lost_server(monkeypatch) -> None:
    def weights():
        yield "w0", torch.zeros(2)
        raise RuntimeError("CUDA out of memory while gathering w1")

    failure = _engine_pushing(monkeypatch, weights(), _Broadcaster(take=None))._push(None, "1")
    assert isinstance(failure, RuntimeError) and "out of memory" in str(failure)  # raised, not retried
