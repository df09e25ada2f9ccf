"""The server side of ``rollout.engine: vllm-server``, loaded inside vLLM's own processes.

- :func:`register` is a vLLM general plugin (entry point ``vllm.general_plugins``): it adds the
  ``gloo`` weight-transfer backend, which vLLM does not ship, so servers without a GPU can receive
  weights over a CPU process group.
- :class:`FingerprintExtension` is passed to ``vllm serve --worker-extension-cls``: it lets the
  trainer read a fingerprint of a few parameters after every weight push, and whether the push
  reached the worker whole.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory
from vllm.distributed.weight_transfer.nccl_engine import NCCLWeightTransferEngine

from posttrain.rollout.weight_transfer import GLOO, GROUP_TIMEOUT_S, broadcast, open_group

logger = logging.getLogger(__name__)


def register() -> None:
    """Make the ``gloo`` weight-transfer backend known to vLLM (plugins load in every process, often twice)."""
    if GLOO not in WeightTransferEngineFactory._registry:
        WeightTransferEngineFactory.register_engine(GLOO, GlooWeightTransferEngine)


class GlooWeightTransferEngine(NCCLWeightTransferEngine):
    """vLLM's dense NCCL engine over a gloo group: tensors arrive in CPU memory, one at a time, and
    load through the same layer-wise reload as NCCL's."""

    def init_transfer_engine(self, init_info: Any) -> None:
        if getattr(init_info, "packed", False):  # an init field in newer vLLM, absent in older
            raise ValueError("the gloo weight transfer sends tensors one by one; pass packed=False")
        config = self.parallel_config
        rank = init_info.rank_offset + config.data_parallel_index * config.world_size + config.rank
        self.model_update_group = open_group(GLOO, init_info.master_address, init_info.master_port, rank,
                                             init_info.world_size, GROUP_TIMEOUT_S)

    def receive_weights(self, update_info: Any) -> None:
        if self.model_update_group is None:
            raise RuntimeError("gloo weight transfer not initialised: call init_weight_transfer_engine first")
        self.broken_at: str | None = None
        for name, dtype_name, shape in zip(update_info.names, update_info.dtype_names, update_info.shapes):
            weight = torch.empty(shape, dtype=getattr(torch, dtype_name))
            try:
                broadcast(self.model_update_group, GLOO, weight)
            except RuntimeError as err:
                # the trainer broke the push off (another server was lost) and pushes again in a new
                # group: end this update instead of failing the worker, which would stop the server;
                # the trainer reads broken_at after every push (FingerprintExtension)
                logger.warning("weight push broken off at %s: %s", name, err)
                self.broken_at = name
                self.model_update_group = None
                return
            self.model.load_weights([(name, weight)])

    def shutdown(self) -> None:
        self.model_update_group = None


class FingerprintExtension:
    """Mixed into vLLM's worker class; called through the ``/collective_rpc`` route."""

    def posttrain_receive_state(self) -> str | None:
        """Where this worker's last gloo receive broke off (None: it received every tensor)."""
        return getattr(getattr(self, "weight_transfer_engine", None), "broken_at", None)

    def posttrain_fingerprint(self, names: str) -> dict[str, list[float | str]]:
        """``{name: [sum, sum of squares, elements, dtype]}`` (float64 sums) of this worker's shard of
        each named parameter (a JSON list of vLLM parameter names); names it does not hold are left out."""
        params = dict(self.model_runner.get_model().named_parameters())  # type: ignore[attr-defined]
        out: dict[str, list[float | str]] = {}
        for name in json.loads(names):
            if name in params:
                values = params[name].detach()
                out[name] = [float(values.sum(dtype=torch.float64)),
                             float(torch.linalg.vector_norm(values, dtype=torch.float64) ** 2),
                             float(values.numel()), str(values.dtype).removeprefix("torch.")]
        return out
