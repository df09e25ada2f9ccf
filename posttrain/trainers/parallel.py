"""Data parallelism for every trainer: this process's slice of a global batch, the loss share that
makes N processes take the single-process step, metric reductions, and DeepSpeed engines.

A launched world (``accelerate launch``, ``torchrun``) runs one copy of the trainer per process.
Every process draws the same global batch (the samplers are seeded alike), takes its contiguous
slice, and scales its local loss by ``world · n_local / n_global`` (n counts the loss's averaging
unit: tokens, sequences or pairs), so that the gradient average DDP and DeepSpeed perform equals
the gradient of the global batch's loss. Under DeepSpeed (an accelerate config with
``distributed_type: DEEPSPEED``), each trainable model gets its own engine built from the
launch's DeepSpeed config; frozen models (reference, reward model) are sharded as inference-only
engines under ZeRO-3 and replicated otherwise.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from posttrain.batch import RolloutBatch
from posttrain.config.loading import ConfigError
from posttrain.config.schema import Recipe

T = TypeVar("T")
logger = logging.getLogger(__name__)

ENGINE_TAG = "state"

#: families whose trainers take their slice of the batch and reduce their losses over the world
SHARDED_FAMILIES = ("sft", "preference", "reward_model", "online")


class Parallel:
    """This process's place in the world and the collectives the trainers use."""

    def __init__(self, accelerator: Accelerator, recipe: Recipe) -> None:
        self.accelerator = accelerator
        self.rank = accelerator.process_index
        self.world = accelerator.num_processes
        self.is_main = accelerator.is_main_process
        plugin = accelerator.state.deepspeed_plugin
        self.ds_config: dict[str, Any] | None = copy.deepcopy(plugin.deepspeed_config) if plugin else None
        self.zero_stage = int(self.ds_config.get("zero_optimization", {}).get("stage", 0)) if self.ds_config else 0
        self.zero3_init = bool(plugin and self.zero_stage == 3 and plugin.zero3_init_flag)
        check_launch(recipe, self.world, self.ds_config, self.zero3_init)
        if plugin and not self.zero3_init:
            # accelerate announces ZeRO-3 to transformers whatever the flag says, and transformers then
            # builds every model already partitioned; without the flag models load whole and are
            # partitioned when their engine is built
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def deepspeed(self) -> bool:
        return self.ds_config is not None

    @property
    def offloads_optimizer(self) -> bool:
        zero = (self.ds_config or {}).get("zero_optimization", {})
        return zero.get("offload_optimizer", {}).get("device", "none") not in ("none", None)

    # ------------------------------------------------------------------ slices
    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous slice of ``items`` (whose length the world size divides)."""
        size = len(items) // self.world
        return list(items[self.rank * size : (self.rank + 1) * size])

    def row_offset(self, rows: int) -> int:
        """Index of this process's first row in a global batch of ``rows``."""
        return self.rank * (rows // self.world)

    # ------------------------------------------------------------- reductions
    def sum(self, value: float | torch.Tensor) -> float:
        if not self.distributed:
            return float(value)
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.accelerator.device)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item())

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every process (they must agree before a collective backward)."""
        return self.sum(0.0 if flag else 1.0) == 0.0

    def loss_share(self, units: float | torch.Tensor) -> tuple[float, float]:
        """(scale of this process's mean loss, global unit count) for a loss averaged over ``units``."""
        local = float(units)
        total = self.sum(local)
        return (self.world * local / total if total > 0 else 0.0), total

    def weighted_mean(self, metrics: dict[str, float], weight: float, total: float) -> dict[str, float]:
        """Global means of per-process means, each weighted by its share ``weight / total`` of the units."""
        if not self.distributed or not metrics:
            return metrics
        keys = sorted(metrics)
        share = weight / total if total > 0 else 1.0 / self.world
        values = torch.tensor([float(metrics[k]) * share for k in keys], dtype=torch.float64,
                              device=self.accelerator.device)
        torch.distributed.all_reduce(values)
        return dict(zip(keys, values.tolist()))

    def gather_objects(self, obj: T) -> list[T]:
        """Every process's ``obj``, in rank order."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(gathered, obj)
        return gathered

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Per-process row blocks of equal shape, concatenated in rank order (on the CPU)."""
        if not self.distributed:
            return tensor
        local = tensor.to(self.accelerator.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        torch.distributed.all_gather(parts, local)
        return torch.cat(parts).cpu()

    def per_row(self, batch: RolloutBatch, compute: Callable[[RolloutBatch], torch.Tensor]) -> torch.Tensor:
        """``compute`` of every row of ``batch`` ([rows, ...], on the CPU): each process computes its
        slice on its device and the slices are gathered."""
        part = batch.select(self.shard(range(len(batch)))).to(self.accelerator.device)
        return self.gather_rows(compute(part)).cpu()

    def broadcast_object(self, obj: T) -> T:
        """The main process's ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            self.accelerator.wait_for_everyone()

    # -------------------------------------------------------------- engines
    def adamw(self, params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float],
              weight_decay: float) -> torch.optim.Optimizer:
        """AdamW; DeepSpeed's CPU Adam (AdamW mode) when the launch offloads the optimiser."""
        if self.offloads_optimizer:
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            return DeepSpeedCPUAdam(params, lr=lr, betas=betas, weight_decay=weight_decay, adamw_mode=True)
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)

    def prepare_trainable(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          max_grad_norm: float | None) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The model and optimiser wrapped for this launch: a DeepSpeed engine of their own under
        DeepSpeed (so a policy and a critic each get one), otherwise accelerate's wrapper."""
        if not self.deepspeed:
            if self.distributed and self.accelerator.distributed_type == DistributedType.NO:
                # a launched CPU world that accelerate does not wrap (it only wraps for GPUs or its
                # MULTI_CPU mode): DDP over gloo, so gradients are averaged all the same
                model = torch.nn.parallel.DistributedDataParallel(model)
            return self.accelerator.prepare(model, optimizer)
        import deepspeed

        config = self._engine_config()
        config["gradient_clipping"] = float(max_grad_norm or 0.0)
        config["zero_allow_untested_optimizer"] = True
        engine, ds_optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
        return engine, ds_optimizer

    def prepare_frozen(self, model: torch.nn.Module) -> torch.nn.Module:
        """A model used for inference only: sharded across the world under ZeRO-3, replicated otherwise."""
        if self.zero_stage != 3:
            return model
        import deepspeed

        config = self._engine_config()
        config["zero_optimization"] = {key: value for key, value in config.get("zero_optimization", {}).items()
                                       if key != "offload_optimizer"}
        engine, *_ = deepspeed.initialize(model=model, config=config)
        engine.eval()
        return engine.module

    def _engine_config(self) -> dict[str, Any]:
        config = copy.deepcopy(self.ds_config or {})
        for key in ("optimizer", "scheduler"):
            config.pop(key, None)
        config.update({"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
                       "train_batch_size": self.world})
        return config

    # ---------------------------------------------------------- checkpoints
    def stream_parameters(self, model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, full tensor) of each parameter in turn; under ZeRO-3 one parameter is gathered at a
        time, so no process ever holds the whole model (the tensor is valid until the next one)."""
        for name, param in model.named_parameters():
            if self.zero_stage == 3:
                import deepspeed

                with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                    yield name, param.data
            else:
                yield name, param.data

    def save_pretrained(self, model: torch.nn.Module, folder: Path) -> None:
        """``save_pretrained`` of the full weights, written by the main process; under ZeRO-3 they are
        streamed parameter by parameter into the main process's CPU state dict."""
        unwrapped = self.accelerator.unwrap_model(model)
        if self.zero_stage != 3:
            if self.is_main:
                unwrapped.save_pretrained(folder)
            return
        state = {name: tensor.detach().to("cpu", copy=True) for name, tensor in self.stream_parameters(unwrapped)
                 if self.is_main}
        if self.is_main:
            persistent = unwrapped.state_dict().keys()
            state.update({name: buffer.detach().cpu() for name, buffer in unwrapped.named_buffers()
                          if name in persistent})
            unwrapped.save_pretrained(folder, state_dict=state)

    def save_engine_state(self, model: torch.nn.Module, folder: Path) -> None:
        """DeepSpeed's sharded optimiser state (every process writes its partition); nothing otherwise."""
        if self.deepspeed:
            model.save_checkpoint(str(folder), tag=ENGINE_TAG, save_latest=False)

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             saved: dict[str, Any] | None, folder: Path) -> None:
        """Restore the optimiser from a checkpoint written by a launch of either kind: DeepSpeed's
        shards under ``folder`` or the plain state dict ``saved``. Across kinds Adam's moments
        cannot be carried over; they restart (with a warning) and the weights, schedule and data
        order carry on."""
        if self.deepspeed and (folder / ENGINE_TAG).is_dir():
            model.load_checkpoint(str(folder), tag=ENGINE_TAG, load_optimizer_states=True,
                                  load_lr_scheduler_states=False, load_module_strict=True)
        elif not self.deepspeed and saved is not None:
            optimizer.load_state_dict(saved)
        else:
            written = "without DeepSpeed" if self.deepspeed else "under DeepSpeed (sharded)"
            logger.warning("%s: the optimiser state was written %s and does not load into this launch; "
                           "Adam's moments restart", folder.parent.parent, written)

    def own_rng_state(self, saved: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
        """This process's RNG state from a checkpoint's per-process states (the main one's when the
        world size changed, or for a checkpoint of one process)."""
        if isinstance(saved, dict):
            return saved
        return saved[self.rank] if len(saved) == self.world else saved[0]


def check_launch(recipe: Recipe, world: int, ds_config: dict[str, Any] | None, zero3_init: bool = False) -> None:
    """Refuse a launch that cannot reproduce the recipe, naming the recipe field and the launch setting."""
    trainer, family = recipe.trainer, recipe.algorithm.family
    if world > 1 and family not in SHARDED_FAMILIES:
        raise ConfigError(f"algorithm.name={recipe.algorithm.name!r} runs in one process; the launch started "
                          f"num_processes={world} (multi-process training covers SFT, the preference losses, "
                          "reward models and the online presets)")
    if trainer.batch_size % world:
        raise ConfigError(f"trainer.batch_size={trainer.batch_size} does not split over the launch's "
                          f"num_processes={world}; use a multiple of {world}")
    if trainer.minibatch_size is not None and family == "online":
        rows = trainer.minibatch_size
        if rows % world:
            raise ConfigError(f"trainer.minibatch_size={rows} does not split over the launch's "
                              f"num_processes={world}; use a multiple of {world}")
    if recipe.rollout.engine in ("vllm", "vllm-server") and recipe.model.lora.enabled:
        stage = int((ds_config or {}).get("zero_optimization", {}).get("stage", 0))
        if stage == 3:
            raise ConfigError(f"rollout.engine={recipe.rollout.engine!r} with model.lora.enabled under DeepSpeed "
                              "zero_stage=3: vLLM gets the policy merged, and a sharded LoRA model is not merged; "
                              "use zero_stage 2 or rollout.engine='hf'")
    if ds_config is None:
        return
    accumulation = ds_config.get("gradient_accumulation_steps", 1)
    if accumulation not in (1, "auto"):
        raise ConfigError(f"DeepSpeed gradient_accumulation_steps={accumulation}: posttrain takes one optimiser "
                          f"step per trainer.batch_size={trainer.batch_size}; set it to 1 and raise "
                          "trainer.batch_size instead")
    clipping = ds_config.get("gradient_clipping", "auto")
    if clipping not in ("auto", None) and float(clipping) != float(trainer.max_grad_norm or 0.0):
        raise ConfigError(f"DeepSpeed gradient_clipping={clipping} disagrees with trainer.max_grad_norm="
                          f"{trainer.max_grad_norm}; leave the DeepSpeed field out (posttrain fills it in)")
    if zero3_init and any(reward.name == "reward_model" for reward in recipe.rewards):
        raise ConfigError("rewards: a reward_model reward under DeepSpeed zero3_init_flag=true: the reward model "
                          "would be built partitioned with no engine to gather it; set zero3_init_flag: false in "
                          "the accelerate config (the policy is still sharded once its engine is built)")
