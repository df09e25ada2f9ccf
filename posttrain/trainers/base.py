"""What every trainer shares: set-up, the step loop, optimisation, checkpoints, resume, metrics.

A family's trainer subclasses :class:`Trainer` and implements :meth:`Trainer.train_step`;
everything else (seeding, the optimiser, skipping non-finite updates, periodic
evaluation, checkpoint/resume and progress) lives here once.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs

from posttrain.config.loading import ConfigError, recipe_to_yaml
from posttrain.config.schema import ModelConfig, Recipe
from posttrain.data.loading import load_rows
from posttrain.data.prompts import EpochSampler, Example, tokenize_examples
from posttrain.evaluation.accuracy import greedy_accuracy
from posttrain.evaluation.harness import evaluate_suite, training_metrics
from posttrain.evaluation.suite import load_suite
from posttrain.models.loading import context_length, load_causal_lm, load_tokenizer
from posttrain.progress import ProgressReporter
from posttrain.rewards import RewardSet
from posttrain.rewards.answer import MatchMode
from posttrain.rollout.factory import build_engine
from posttrain.trainers import checkpoint as ckpt
from posttrain.trainers.metrics import MetricsWriter
from posttrain.trainers.parallel import Parallel

logger = logging.getLogger(__name__)


class NonFiniteStop(RuntimeError):
    """Too many updates in a row had a NaN/Inf loss or gradient."""


@dataclass
class RunResult:
    status: str
    step: int
    output_dir: Path
    checkpoint: Path | None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    #: False on the other processes of a launched world (which report nothing)
    is_main: bool = True


class Trainer:
    """Base of every trainer; ``run()`` drives ``train_step`` from step 1 (or the resumed step) to the end."""

    #: fields the training split must provide, per family
    required_fields: tuple[str, ...] = ()
    #: whether the trained model generates (and so needs a rollout engine and answer evaluation)
    generates: bool = True
    #: peft task type of the model this family trains
    lora_task_type: str = "CAUSAL_LM"

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.cfg = recipe.trainer
        self.output_dir = Path(self.cfg.output_dir)
        self.step = 0
        self.consecutive_nonfinite = 0
        self.total_nonfinite = 0

    # ----------------------------------------------------------------- set-up
    def setup(self) -> None:
        self.eval_suites = [(suite, RewardSet(suite.rewards)) for suite in map(load_suite, self.cfg.eval_suites)]
        if self.eval_suites and not self.generates:
            raise ConfigError(f"trainer.eval_suites: the {self.recipe.algorithm.name} model does not generate; "
                              "suites evaluate generated text")
        if self.cfg.torch_threads:
            torch.set_num_threads(self.cfg.torch_threads)
        seed_everything(self.cfg.seed)
        self.accelerator = make_accelerator(self.recipe.model.device)
        self.parallel = Parallel(self.accelerator, self.recipe)
        self.resume_from = ckpt.resolve_resume(self.output_dir, self.cfg.resume)
        if self.resume_from is None and self.parallel.is_main:
            ckpt.claim_fresh_output_dir(self.output_dir, overwrite=self.cfg.overwrite)
        self.parallel.barrier()
        self.tokenizer = load_tokenizer(self.recipe.model)
        self.model = self._load_policy()
        self.context = context = context_length(self.model)
        data = self.recipe.data
        train_rows, origin = load_rows(data, data.split, self.required_fields)
        self.examples = self.build_examples(train_rows, origin, context)
        self.eval_examples: list[Example] = []
        if self.cfg.eval_every:
            eval_rows, eval_origin = load_rows(data, data.eval_split, self.eval_fields)
            self.eval_examples = tokenize_examples(eval_rows[: self.cfg.eval_samples], eval_origin, self.tokenizer,
                                                   data, context, self.recipe.rollout.max_new_tokens)
        self.sampler = EpochSampler(len(self.examples), self.cfg.seed)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self.parallel.adamw(trainable, self.cfg.lr, self.cfg.betas, self.cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.model, self.optimizer = self.parallel.prepare_trainable(self.model, self.optimizer,
                                                                     self.cfg.max_grad_norm)
        if self.generates:
            self.engine = build_engine(self.recipe.rollout, self.policy, self.tokenizer,
                                       synced=self.parallel.zero_stage == 3 and self.parallel.distributed,
                                       seed=self.cfg.seed, parallel=self.parallel)
        self.setup_family()
        metrics_path = self.output_dir / self.recipe.logging.metrics_file
        if self.resume_from is not None:
            self._restore(self.resume_from)
            if self.parallel.is_main:
                MetricsWriter.truncate_after(metrics_path, self.step)
        elif metrics_path.exists() and self.parallel.is_main:
            metrics_path.unlink()
        if self.parallel.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "recipe.yaml").write_text(recipe_to_yaml(self.recipe))
        tb = self.output_dir / "tensorboard" if self.recipe.logging.tensorboard else None
        self.metrics = MetricsWriter(metrics_path, tb, enabled=self.parallel.is_main)

    def setup_family(self) -> None:
        """Family-specific set-up after the policy and optimiser exist (reference model, etc.)."""

    def build_examples(self, rows: list[dict[str, Any]], origin: str, context: int) -> list[Any]:
        """What the training split becomes; the sampler draws indices into it."""
        return tokenize_examples(rows, origin, self.tokenizer, self.recipe.data, context,
                                 self.reserved_response_tokens())

    @property
    def eval_fields(self) -> tuple[str, ...]:
        """Fields the held-out split must provide for :meth:`evaluate`."""
        return (self.recipe.data.prompt_field, self.recipe.data.answer_field)

    def load_weights(self, spec: ModelConfig, device: torch.device) -> torch.nn.Module:
        """The model this family trains, before LoRA and distribution wrappers."""
        return load_causal_lm(spec, device)

    def reserved_response_tokens(self) -> int:
        return self.recipe.rollout.max_new_tokens

    @property
    def policy(self) -> torch.nn.Module:
        """The policy without any distributed wrapper."""
        return self.accelerator.unwrap_model(self.model)

    def _load_policy(self) -> torch.nn.Module:
        spec = self.recipe.model
        device = self.accelerator.device
        lora = spec.lora
        if self.resume_from is not None and not lora.enabled:
            model = self.load_weights(spec.model_copy(update={"path": str(self.resume_from / ckpt.MODEL_DIR),
                                                              "tiny": None}), device)
        else:
            model = self.load_weights(spec, device)
        if lora.enabled:
            from peft import LoraConfig as PeftLoraConfig
            from peft import PeftModel, get_peft_model

            if self.resume_from is not None:
                model = PeftModel.from_pretrained(model, str(self.resume_from / ckpt.MODEL_DIR), is_trainable=True)
            else:
                model = get_peft_model(model, PeftLoraConfig(
                    r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                    target_modules=lora.target_modules, task_type=self.lora_task_type))
        model.train()
        return model

    def _lr_factor(self, step: int) -> float:
        warmup = self.cfg.warmup_steps
        if warmup and step < warmup:
            return (step + 1) / warmup
        if self.cfg.lr_scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, self.cfg.steps - warmup))
        if self.cfg.lr_scheduler == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    # ------------------------------------------------------------ the loop
    def train_step(self, step: int) -> dict[str, Any]:
        raise NotImplementedError

    def run(self) -> RunResult:
        self.setup()
        reporter = ProgressReporter(self.cfg.steps, self.step,
                                    enabled=self.recipe.logging.progress and self.parallel.is_main,
                                    label=f"{self.recipe.algorithm.name} {self.output_dir}")
        status, reason, metrics = "completed", "", {}
        started = time.perf_counter()
        saved_at = self.step if self.resume_from is not None else -1
        try:
            with reporter:
                if self.step == 0 and self.cfg.eval_every:
                    self.metrics.write(0, self.evaluate_with_suites())
                while self.step < self.cfg.steps:
                    metrics = {"lr": self.scheduler.get_last_lr()[0]}
                    metrics.update(self.train_step(self.step + 1))
                    self.scheduler.step()
                    self.step += 1
                    metrics["nonfinite/total"] = self.total_nonfinite
                    if self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
                        metrics.update(self.evaluate_with_suites())
                    self.metrics.write(self.step, metrics)
                    reporter.update(self.step, metrics)
                    if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                        self.save()
                        saved_at = self.step
                    reason = self.parallel.broadcast_object(self._early_finish(metrics, time.perf_counter() - started))
                    if reason:
                        break
        except NonFiniteStop as err:
            status, reason = "stopped", str(err)
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted by the user"
        finally:
            self.metrics.close()
        checkpoint = self.save() if saved_at != self.step else ckpt.checkpoint_root(self.output_dir) / f"step-{self.step:06d}"
        if reason:
            log = logger.info if status == "completed" else logger.warning
            log("run %s at step %d: %s", status, self.step, reason)
        return RunResult(status, self.step, self.output_dir, checkpoint, metrics, reason, self.parallel.is_main)

    def _early_finish(self, metrics: dict[str, Any], elapsed: float) -> str:
        """Why a run that is going well ends before trainer.steps ('' when it goes on)."""
        target = self.cfg.stop_at_eval_accuracy
        if target is not None and metrics.get("eval/accuracy", -1.0) >= target:
            return f"eval/accuracy {metrics['eval/accuracy']:.3f} reached trainer.stop_at_eval_accuracy={target}"
        if self.cfg.max_time_s is not None and elapsed >= self.cfg.max_time_s:
            return f"trainer.max_time_s={self.cfg.max_time_s} reached"
        return ""

    def evaluate_with_suites(self) -> dict[str, float]:
        """The family's held-out metrics, then those of each suite in trainer.eval_suites."""
        metrics = self.evaluate()
        for suite, rewards in self.eval_suites:
            result = evaluate_suite(self.engine, self.tokenizer, self.context, suite, str(self.output_dir),
                                    progress=False, rewards=rewards)
            metrics.update(training_metrics(result))
        return metrics

    def evaluate(self) -> dict[str, float]:
        result = greedy_accuracy(self.engine, self.eval_examples, self.recipe.rollout.max_new_tokens,
                                 self.answer_match_mode())
        return {"eval/accuracy": result.accuracy}

    def answer_match_mode(self) -> MatchMode:
        for reward in self.recipe.rewards:
            if reward.name == "exact_answer":
                return reward.args.get("mode", "exact")
        return "exact"

    # ----------------------------------------------------------- updates
    def apply_update(self, loss: torch.Tensor, model: torch.nn.Module | None = None,
                     optimizer: torch.optim.Optimizer | None = None) -> tuple[float, bool]:
        """Backward, clip and step ``model`` (default the policy), unless the loss or a gradient is
        NaN/Inf (then skip and count)."""
        model = model if model is not None else self.model
        optimizer = optimizer if optimizer is not None else self.optimizer
        optimizer.zero_grad(set_to_none=True)
        finite = self.parallel.all_true(bool(torch.isfinite(loss)))
        grad_norm = float("nan")
        if finite and self.parallel.deepspeed:
            # the engine reduces the gradients, clips them to trainer.max_grad_norm and steps
            model.backward(loss)
            model.step()
            grad_norm = float(model.get_global_grad_norm() or 0.0)
            finite = math.isfinite(grad_norm)
        elif finite:
            self.accelerator.backward(loss)
            max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm is not None else float("inf")
            grad_norm = float(self.accelerator.clip_grad_norm_(model.parameters(), max_norm))
            finite = math.isfinite(grad_norm)
        if not finite:
            optimizer.zero_grad(set_to_none=True)
            self.consecutive_nonfinite += 1
            self.total_nonfinite += 1
            if self.consecutive_nonfinite >= self.cfg.max_consecutive_nonfinite:
                raise NonFiniteStop(
                    f"{self.consecutive_nonfinite} updates in a row had a non-finite loss or gradient "
                    f"(trainer.max_consecutive_nonfinite={self.cfg.max_consecutive_nonfinite}); "
                    "the last good weights were checkpointed"
                )
            return grad_norm, False
        self.consecutive_nonfinite = 0
        if not self.parallel.deepspeed:
            optimizer.step()
        return grad_norm, True

    # -------------------------------------------------------- checkpoints
    def save(self) -> Path:
        """Write a checkpoint; in a launched world every process takes part (sharded optimiser
        state, gathered ZeRO-3 weights) and the main process writes the files."""
        parallel = self.parallel
        state = {
            "step": self.step,
            "optimizer": None if parallel.deepspeed else self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": parallel.gather_objects(ckpt.rng_state()),
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "total_nonfinite": self.total_nonfinite,
            "family": self.family_state(),
        }

        def save_model(folder: Path) -> None:
            parallel.save_pretrained(self.model, folder)
            if parallel.is_main:
                self.tokenizer.save_pretrained(folder)
            parallel.save_engine_state(self.model, folder.parent / ckpt.ZERO_DIR / "policy")
            self.save_family_models(folder.parent)

        return ckpt.save_checkpoint(self.output_dir, self.step, save_model, state, recipe_to_yaml(self.recipe),
                                    self.cfg.save_total_limit, parallel)

    def family_state(self) -> dict[str, Any]:
        return {}

    def save_family_models(self, checkpoint: Path) -> None:
        """Write models besides the policy (a critic) into the checkpoint folder being written."""

    def load_family_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`family_state` saved."""

    def _restore(self, checkpoint: Path) -> None:
        state = ckpt.load_state(checkpoint)
        self.step = state["step"]
        self.parallel.load_optimizer_state(self.model, self.optimizer, state["optimizer"],
                                           checkpoint / ckpt.ZERO_DIR / "policy")
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.consecutive_nonfinite = state["consecutive_nonfinite"]
        self.total_nonfinite = state["total_nonfinite"]
        self.load_family_state(state.get("family", {}))
        ckpt.restore_rng(self.parallel.own_rng_state(state["rng"]))
        logger.info("resumed from %s at step %d", checkpoint, self.step)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_accelerator(device: str) -> Accelerator:
    """An Accelerator for this process; without CUDA a launched multi-process world talks over gloo.
    (``cpu=True`` would make accelerate drop a DeepSpeed launch's plugin, so a DeepSpeed launch keeps it.)"""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    handlers = [InitProcessGroupKwargs(backend="gloo")] if launched and not torch.cuda.is_available() else []
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    return Accelerator(cpu=device == "cpu" and not deepspeed, kwargs_handlers=handlers)
