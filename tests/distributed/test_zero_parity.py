"""Two processes over gloo under DeepSpeed ZeRO-2 and ZeRO-3 take the same steps as one process.

For GRPO (with a reference model and two minibatches a step), PPO with a critic, DPO,
reward-model training and SFT, the per-step losses of a 2-process launch with the same global batch equal
the single-process run's to 1e-5. A ZeRO-3 run resumed from its step-2 checkpoint reproduces step
3; its sharded checkpoints reload into plain transformers and into a single-process run.
One ``accelerate launch`` per ZeRO stage trains every recipe (the launcher's start-up dominates).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from posttrain.config import validate_recipe
from posttrain.trainers import train
from posttrain.trainers.metrics import read_metrics

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1}
#: a random model rarely writes the arithmetic answer; a digit anywhere gives the groups reward variance
DIGIT_REWARDS = [{"name": "format", "args": {"pattern": "[0-9]", "search": True}},
                 {"name": "length_penalty", "weight": 0.5, "args": {"max_length": 5, "unit": "chars"}}]


def recipes(out: Path) -> dict[str, dict[str, Any]]:
    base: dict[str, Any] = {
        "model": {"tiny": TINY},
        "data": {"task": {"name": "arithmetic", "digits": 2, "num_train": 200, "num_test": 20}},
        "rollout": {"max_new_tokens": 5},
        "logging": {"progress": False},
    }
    trainer = {"steps": 3, "batch_size": 4, "lr": 1e-3, "torch_threads": 1, "checkpoint_every": 2}
    online = {"rollout": {"num_generations": 4, "max_new_tokens": 5, "batch_size": 8}, "rewards": DIGIT_REWARDS}
    specs = {
        "grpo": {**online, "algorithm": {"name": "grpo", "beta": 0.04}, "trainer": {**trainer, "minibatch_size": 8}},
        "ppo": {**online, "algorithm": {"name": "ppo"}, "trainer": {**trainer, "minibatch_size": 8}},
        "dpo": {"algorithm": {"name": "dpo", "beta": 0.1}, "reference": {"logprob_cache": False},
                "trainer": {**trainer, "batch_size": 8}},
        "rm": {"algorithm": {"name": "reward_model"}, "trainer": {**trainer, "batch_size": 8}},
        "sft": {"algorithm": {"name": "sft"}, "trainer": {**trainer, "batch_size": 8}},
    }
    return {name: {**base, **spec, "trainer": {"output_dir": str(out / name), **trainer, **spec.get("trainer", {})}}
            for name, spec in specs.items()}


def write(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def launch_command(config: str, recipe_files: list[Path], *launch_args: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "recipes" / "accelerate" / config), *launch_args,
            str(ROOT / "tests" / "distributed" / "run_recipes.py"), *map(str, recipe_files)]


def launch_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(tmp / "torch_extensions")),
            "PYTHONPATH": str(ROOT)}


def launch(config: str, recipe_files: list[Path], tmp: Path) -> None:
    command = launch_command(config, recipe_files, "--main_process_port", str(_free_port()))
    done = subprocess.run(command, env=launch_env(tmp), cwd=tmp, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def own_threads() -> Iterator[None]:
    """In-process runs set trainer.torch_threads=1, which would stay set for the rest of the session."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Output folders: ``single/<name>``, ``zero2/<name>``, ``zero3/<name>`` and the resumed
    ``zero3/grpo_resumed`` and ``ddp/grpo``."""
    tmp = tmp_path_factory.mktemp("zero")
    with own_threads():
        for raw in recipes(tmp / "single").values():
            assert train(validate_recipe(raw)).status == "completed"
    for stage in (2, 3):
        specs = recipes(tmp / f"zero{stage}")
        files = [write(raw, tmp / f"zero{stage}-{name}.yaml") for name, raw in specs.items()]
        if stage == 3:
            resumed = json.loads(json.dumps(specs["grpo"]))
            resumed["trainer"].update(output_dir=str(tmp / "zero3" / "grpo_resumed"),
                                      resume=str(tmp / "zero3" / "grpo" / "checkpoints" / "step-000002"))
            files.append(write(resumed, tmp / "zero3-grpo-resumed.yaml"))
        launch(f"zero{stage}.yaml", files, tmp)
    launch("ddp.yaml", [write(recipes(tmp / "ddp")["grpo"], tmp / "ddp-grpo.yaml")], tmp)
    return {"root": tmp}


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("name", ["grpo", "ppo", "dpo", "rm", "sft"])
def test_two_processes_take_the_single_process_steps(runs: dict[str, Path], name: str, stage: int) -> None:
    root = runs["root"]
    single = read_metrics(root / "single" / name / "metrics.jsonl")
    sharded = read_metrics(root / f"zero{stage}" / name / "metrics.jsonl")
    assert [m["step"] for m in sharded] == [1, 2, 3]
    keys = ["loss", "grad_norm"] + (["critic/value_loss", "reward/mean"] if name == "ppo" else [])
    for one, two in zip(single, sharded):
        for key in keys:
            assert two[key] == pytest.approx(one[key], abs=TOLERANCE), (key, one["step"])
    for key in keys:
        assert len({round(m[key], 6) for m in single}) > 1, f"{key} does not move: nothing was compared"


def test_ddp_without_gpus_averages_gradients_like_one_process(runs: dict[str, Path]) -> None:
    """accelerate leaves a CPU world unwrapped; posttrain wraps it in DDP over gloo itself."""
    single = read_metrics(runs["root"] / "single" / "grpo" / "metrics.jsonl")
    ddp = read_metrics(runs["root"] / "ddp" / "grpo" / "metrics.jsonl")
    assert len(ddp) == 3
    for one, two in zip(single, ddp):
        for key in ("loss", "grad_norm", "kl"):
            assert two[key] == pytest.approx(one[key], abs=TOLERANCE), (key, one["step"])


def test_zero3_resume_reproduces_the_next_step(runs: dict[str, Path]) -> None:
    root = runs["root"] / "zero3"
    resumed = read_metrics(root / "grpo_resumed" / "metrics.jsonl")
    full = read_metrics(root / "grpo" / "metrics.jsonl")
    assert [m["step"] for m in resumed] == [3]
    for key in ("loss", "grad_norm", "reward/mean", "kl"):
        assert resumed[0][key] == pytest.approx(full[2][key], abs=TOLERANCE), key


def test_sharded_checkpoints_reload_into_transformers_and_one_process(runs: dict[str, Path],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

    root = runs["root"]
    for name, loader, folder in (("grpo", AutoModelForCausalLM, "model"), ("ppo", AutoModelForTokenClassification,
                                                                          "critic")):
        single = loader.from_pretrained(root / "single" / name / "checkpoints" / "step-000003" / folder)
        sharded = loader.from_pretrained(root / "zero3" / name / "checkpoints" / "step-000003" / folder)
        for (key, a), (_, b) in zip(single.state_dict().items(), sharded.state_dict().items()):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), (name, key)
    raw = recipes(root / "from_zero3")["ppo"]
    raw["trainer"]["resume"] = str(root / "zero3" / "ppo" / "checkpoints" / "step-000002")
    with own_threads(), caplog.at_level(logging.WARNING):
        result = train(validate_recipe(raw))
    assert (result.status, result.step) == ("completed", 3)
    assert "optimiser state" in caplog.text


def test_two_nodes_on_loopback_take_the_single_process_steps(runs: dict[str, Path]) -> None:
    """The shipped two-machine config, as machine 0 and machine 1 with one process each,
    meeting at 127.0.0.1: DPO steps equal the single-process run's."""
    root = runs["root"]
    raw = recipes(root / "nodes")["dpo"]
    recipe = write(raw, root / "nodes-dpo.yaml")
    port = str(_free_port())
    nodes = [subprocess.Popen(launch_command("two_nodes.yaml", [recipe], "--machine_rank", str(rank),
                                             "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                                             "--num_processes", "2"),
                              env=launch_env(root), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(out[-3000:] for out in outputs)
    single = read_metrics(root / "single" / "dpo" / "metrics.jsonl")
    two_nodes = read_metrics(root / "nodes" / "dpo" / "metrics.jsonl")
    assert [m["step"] for m in two_nodes] == [1, 2, 3]
    for one, two in zip(single, two_nodes):
        assert two["loss"] == pytest.approx(one["loss"], abs=TOLERANCE)
