"""Pushing the trainer's weights into running vLLM servers over a process group.

The trainer is rank 0 of a group whose other ranks are the servers' model workers (a server with
tensor parallelism contributes one rank per shard). Each push drives vLLM's own weight-update
routes (``/start_weight_update``, ``/update_weights``, ``/finish_weight_update``) while rank 0
broadcasts the tensors one by one; the workers load them through vLLM's layer-wise reload, the
path that also handles the CPU backend's repacked linear weights.

On GPU the group is vLLM's NCCL backend. Without a GPU it is gloo, which vLLM does not ship: the
server side of it is :mod:`posttrain.rollout.vllm_worker`.
"""

from __future__ import annotations

import inspect
import logging
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import torch

logger = logging.getLogger(__name__)

GLOO = "gloo"
#: how long a member of the weight group waits for the others before giving up
GROUP_TIMEOUT_S = 600.0


def open_group(backend: str, address: str, port: int, rank: int, world_size: int, timeout_s: float,
               listen_socket: socket.socket | None = None) -> Any:
    """Join the weight group: a torch gloo group, or vLLM's NCCL communicator on the current GPU.
    Rank 0 of a gloo group hosts its store on ``listen_socket``: under ``torchrun`` / ``accelerate
    launch`` torch would otherwise connect to the launcher's store instead of serving this one."""
    if backend == GLOO:
        from vllm.distributed.utils import stateless_init_torch_distributed_process_group

        options: dict[str, Any] = {"listen_socket": listen_socket}
        if "timeout" in inspect.signature(stateless_init_torch_distributed_process_group).parameters:
            options["timeout"] = timedelta(seconds=timeout_s)  # older vLLM: torch's default (30 min)
        return stateless_init_torch_distributed_process_group(address, port, rank, world_size, GLOO, **options)
    from vllm.distributed.weight_transfer.nccl_common import stateless_init_process_group

    return stateless_init_process_group(address, port, rank, world_size, torch.accelerator.current_device_index())


def broadcast(group: Any, backend: str, tensor: torch.Tensor) -> None:
    """Broadcast ``tensor`` from rank 0 of ``group`` (in place on the receivers)."""
    if backend == GLOO:
        group.broadcast(tensor, 0).wait()
    else:
        group.broadcast(tensor, src=0, stream=torch.cuda.current_stream())


def reachable_address(urls: Iterable[str]) -> str:
    """This machine's address as seen from the servers: loopback when they all run here, otherwise
    the address of the interface that routes to the first remote one."""
    hosts = [urlparse(url).hostname or "127.0.0.1" for url in urls]
    remote = [h for h in hosts if h not in ("localhost", "127.0.0.1", "::1")]
    if not remote:
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((remote[0], 9))
        return probe.getsockname()[0]


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


class WeightBroadcaster:
    """Rank 0 of the weight group; ``post(url, route, body[, timeout_s])`` is the HTTP call to one server."""

    def __init__(self, urls: list[str], world_sizes: list[int], post: Callable[..., Any],
                 backend: str, address: str, port: int, timeout_s: float) -> None:
        self.urls = urls
        self.post = post
        self.backend = backend
        world = 1 + sum(world_sizes)
        listener = None
        if backend == GLOO:
            listener = socket.create_server((address, port))
            port = listener.getsockname()[1]
        elif not port:
            port = free_port(address)
        offsets = [1 + sum(world_sizes[:i]) for i in range(len(urls))]
        self.pool = ThreadPoolExecutor(max_workers=len(urls) + 1, thread_name_prefix="weight-sync")
        # the workers block inside init until the trainer joins, so their calls run beside ours; a
        # server that refuses (no weight-transfer backend, say) fails the set-up at once instead of
        # leaving the trainer waiting for it in the rendezvous
        pending = [self.pool.submit(post, url, "init_weight_transfer_engine", {"init_info": {
            "master_address": address, "master_port": port, "rank_offset": offset, "world_size": world}})
            for url, offset in zip(urls, offsets)]
        joining = self.pool.submit(open_group, backend, address, port, 0, world, timeout_s, listener)
        wait([joining, *pending], return_when=FIRST_EXCEPTION)
        for future in pending:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        self.group = joining.result()
        for future in pending:
            future.result()
        logger.info("weight group: trainer + %d worker ranks on %s (%s)", world - 1, f"{address}:{port}", backend)

    def push(self, tensors: Iterable[tuple[str, torch.Tensor]], metadata: list[tuple[str, torch.dtype, list[int]]],
             version: str) -> None:
        """Broadcast ``tensors`` (in ``metadata`` order) into every server's model."""
        for url in self.urls:
            self.post(url, "start_weight_update", None)
        info = {"names": [m[0] for m in metadata], "dtype_names": [str(m[1]).removeprefix("torch.") for m in metadata],
                "shapes": [list(m[2]) for m in metadata]}
        receiving = [self.pool.submit(self.post, url, "update_weights", {"update_info": info}) for url in self.urls]
        for future in receiving:  # a request refused outright surfaces now, not after a stalled broadcast
            if future.done():
                future.result()
        device = torch.device("cpu") if self.backend == GLOO else torch.device("cuda")
        for (name, tensor), (expected, _, _) in zip(tensors, metadata, strict=True):
            if name != expected:
                raise RuntimeError(f"weight push out of order: sent {name!r} where the servers expect {expected!r}")
            broadcast(self.group, self.backend, tensor.detach().to(device).contiguous())
        for future in receiving:
            future.result()
        for url in self.urls:
            self.post(url, "finish_weight_update", {"weight_version": version})

    def leave(self) -> None:
        """Drop this end of the group. A gloo group's connections close when its last reference goes,
        so a server still receiving from it gets an error at once instead of waiting out its timeout."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.group is not None:
            if self.backend != GLOO:
                self.group.destroy()
            elif hasattr(self.group, "abort"):  # torch >= 2.7
                self.group.abort()
        self.group = None

    def close(self, timeout_s: float) -> None:
        """Leave the group; each server is asked (within ``timeout_s``) to drop its end."""
        self.leave()
        for url in self.urls:
            try:
                self.post(url, "shutdown_weight_transfer_engine", None, timeout_s)
            except Exception as err:  # a lost server cannot be shut down; the group is dropped anyway
                logger.debug("could not shut down the weight transfer on %s: %s", url, err)
