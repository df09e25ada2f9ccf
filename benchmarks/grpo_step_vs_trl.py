"""Seconds per GRPO step: posttrain's OnlineTrainer against TRL's GRPOTrainer (no vLLM), in one process.

Both frameworks start from the very same tiny Qwen2 checkpoint (saved once to a temporary folder) and train on
the same arithmetic prompts with the same group size, generation length, sampling, optimiser and batch: one
rollout of ``PROMPTS_PER_STEP × NUM_GENERATIONS`` completions and one AdamW update per step. A step is timed
from its start to the end of the optimiser update (rollout, reward, advantages, loss, backward, step); logging
and checkpointing happen outside that window in both frameworks. The first ``--warmup`` steps are excluded.

    .venv/bin/python benchmarks/grpo_step_vs_trl.py [--steps 20] [--warmup 3] [--threads N] [--out PATH]
"""
# ruff: noqa: E402  (the offline switches below must be set before transformers and datasets are imported)

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
import trl
from transformers import PrinterCallback, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from trl import GRPOConfig, GRPOTrainer

from posttrain.batch import RolloutBatch
from posttrain.config.loading import validate_recipe
from posttrain.config.schema import TaskConfig, TinyModelConfig
from posttrain.data.tasks.arithmetic import generate_arithmetic
from posttrain.models.tiny import build_tiny_model
from posttrain.rewards.answer import answer_matches
from posttrain.trainers import build_trainer

PROMPTS_PER_STEP = 32
NUM_GENERATIONS = 8
MAX_NEW_TOKENS = 5
TEMPERATURE = 1.0
LEARNING_RATE = 1e-4
TASK = TaskConfig(name="arithmetic", digits=2, num_train=4000, num_test=400, seed=0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="measured steps per framework")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the measured ones")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads for both")
    parser.add_argument("--seed", type=int, default=0, help="seed of both trainers")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/grpo_step_vs_trl.json"), help="JSON results")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def save_tiny_checkpoint(folder: Path) -> None:
    model, tokenizer = build_tiny_model(TinyModelConfig(seed=0))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def report_step(name: str, step: int, warmup: int, seconds: float, extra: str = "") -> None:
    phase = "warm-up" if step <= warmup else "measured"
    print(f"  {name:9s} step {step:3d} ({phase:8s}) {seconds:7.3f} s{extra}", flush=True)


# ------------------------------------------------------------------------------------------------ posttrain
def run_posttrain(model_dir: Path, work_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    recipe = validate_recipe({
        "model": {"path": str(model_dir), "device": "cpu", "dtype": "float32"},
        "data": {"task": TASK.model_dump()},
        "algorithm": {"name": "grpo", "beta": 0.0},
        "rollout": {"num_generations": NUM_GENERATIONS, "max_new_tokens": MAX_NEW_TOKENS,
                    "temperature": TEMPERATURE, "top_p": 1.0, "top_k": 0},
        "rewards": [{"name": "exact_answer"}],
        "trainer": {"steps": args.warmup + args.steps, "batch_size": PROMPTS_PER_STEP, "lr": LEARNING_RATE,
                    "seed": args.seed, "torch_threads": args.threads, "output_dir": str(work_dir / "posttrain"),
                    "eval_every": 0, "checkpoint_every": 0},
        "logging": {"progress": False},
    })
    trainer = build_trainer(recipe)
    trainer.setup()
    rollouts: list[RolloutBatch] = []
    generate = trainer.engine.generate

    def keep_last_rollout(*call_args: Any, **call_kwargs: Any) -> RolloutBatch:
        rollouts[:] = [generate(*call_args, **call_kwargs)]
        return rollouts[0]

    trainer.engine.generate = keep_last_rollout
    durations: list[float] = []
    for step in range(1, args.warmup + args.steps + 1):
        start = time.perf_counter()
        metrics = trainer.train_step(step)
        trainer.scheduler.step()
        seconds = time.perf_counter() - start
        report_step("posttrain", step, args.warmup,
                    seconds, f"  reward {metrics['reward/mean']:.3f}  max len {metrics['response_length/max']:.0f}")
        if step > args.warmup:
            durations.append(seconds)
    batch = rollouts[0]
    prompts = trainer.tokenizer.batch_decode(batch.prompt_ids, skip_special_tokens=True)
    completion_ids = [ids[mask.bool()].tolist() for ids, mask in zip(batch.response_ids, batch.response_mask)]
    return {"durations": durations,
            "last_step": last_step(prompts, batch.completions, completion_ids, torch.get_num_threads())}


# ------------------------------------------------------------------------------------------------------ TRL
class ExactAnswer:
    """TRL reward: exact match of the stripped completion (posttrain's ``exact_answer``); keeps the last batch."""

    def __init__(self) -> None:
        self.last: tuple[list[str], list[str], list[list[int]]] = ([], [], [])
        self.mean_reward = 0.0

    def __call__(self, prompts: list[str], completions: list[str], completion_ids: list[list[int]],
                 answer: list[str], **_: Any) -> list[float]:
        self.last = (prompts, completions, completion_ids)
        rewards = [float(answer_matches(c, a)) for c, a in zip(completions, answer)]
        self.mean_reward = sum(rewards) / len(rewards)
        return rewards


class StepTimer(TrainerCallback):
    """Wall clock from ``on_step_begin`` to ``on_step_end`` of every optimiser step after the warm-up."""

    def __init__(self, warmup: int, reward: ExactAnswer) -> None:
        self.warmup, self.reward = warmup, reward
        self.durations: list[float] = []
        self.threads = 0
        self._start = 0.0

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                      **kwargs: Any) -> None:
        self.threads = torch.get_num_threads()
        self._start = time.perf_counter()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        seconds = time.perf_counter() - self._start
        report_step("TRL", state.global_step, self.warmup, seconds,
                    f"  reward {self.reward.mean_reward:.3f}  max len {max(map(len, self.reward.last[2]))}")
        if state.global_step > self.warmup:
            self.durations.append(seconds)


def trl_config(work_dir: Path, args: argparse.Namespace) -> GRPOConfig:
    completions_per_step = PROMPTS_PER_STEP * NUM_GENERATIONS
    return GRPOConfig(
        output_dir=str(work_dir / "trl"),
        max_steps=args.warmup + args.steps,
        seed=args.seed,
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        model_init_kwargs={"dtype": "float32"},
        # one rollout of 32 prompts × 8 completions and one optimiser step on all 256 completions
        per_device_train_batch_size=completions_per_step,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=NUM_GENERATIONS,
        max_completion_length=MAX_NEW_TOKENS,
        temperature=TEMPERATURE,
        top_p=1.0,
        top_k=0,
        # posttrain's grpo preset: group-std-scaled advantages, per-sequence token mean, ε = 0.2, no KL
        beta=0.0,
        loss_type="grpo",
        scale_rewards="group",
        epsilon=0.2,
        # posttrain's optimiser: torch AdamW (not fused), constant lr, no decay, clip at 1.0
        optim="adamw_torch",
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.999,
        max_grad_norm=1.0,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        disable_tqdm=True,
        log_level="error",
    )


def run_trl(model_dir: Path, work_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    rows = generate_arithmetic(TASK)["train"]
    dataset = datasets.Dataset.from_dict({"prompt": [r["prompt"] for r in rows], "answer": [r["answer"] for r in rows]})
    reward = ExactAnswer()
    timer = StepTimer(args.warmup, reward)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=reward, args=trl_config(work_dir, args),
                          train_dataset=dataset, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)
    generation = trainer.generation_config
    tokenizer = trainer.processing_class
    print(f"  TRL generation: max_new_tokens={generation.max_new_tokens} pad={tokenizer.pad_token!r} "
          f"(id {generation.pad_token_id}) eos={tokenizer.eos_token!r} (ids {generation.eos_token_id}) "
          f"do_sample={generation.do_sample} temperature={generation.temperature} top_p={generation.top_p} "
          f"top_k={generation.top_k}", flush=True)
    torch.set_num_threads(args.threads)
    trainer.train()
    return {"durations": timer.durations, "last_step": last_step(*reward.last, timer.threads)}


# ----------------------------------------------------------------------------------------------- reporting
def last_step(prompts: list[str], completions: list[str], completion_ids: list[list[int]],
              threads: int) -> dict[str, Any]:
    """What the last step generated: its prompts (one per group), one sample, the longest completion."""
    return {"completions": len(completions), "prompts": list(dict.fromkeys(prompts)),
            "sample": {"prompt": prompts[0], "completion": completions[0], "completion_ids": completion_ids[0]},
            "max_completion_tokens": max(len(ids) for ids in completion_ids), "torch_threads": threads}


def summarise(durations: list[float]) -> dict[str, float]:
    return {"mean_s": statistics.fmean(durations), "median_s": statistics.median(durations),
            "min_s": min(durations), "max_s": max(durations)}


def main() -> None:
    args = parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} (1 min) on {os.cpu_count()} CPUs; "
          "other busy processes skew the timings", flush=True)
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        work_dir = Path(tmp)
        model_dir = work_dir / "tiny-qwen2"
        save_tiny_checkpoint(model_dir)
        print(f"posttrain: {args.warmup} warm-up + {args.steps} measured steps", flush=True)
        posttrain_run = run_posttrain(model_dir, work_dir, args)
        print(f"TRL: {args.warmup} warm-up + {args.steps} measured steps", flush=True)
        trl_run = run_trl(model_dir, work_dir, args)

    results = {"posttrain": summarise(posttrain_run["durations"]), "trl": summarise(trl_run["durations"])}
    ratio_mean = results["trl"]["mean_s"] / results["posttrain"]["mean_s"]
    ratio_median = results["trl"]["median_s"] / results["posttrain"]["median_s"]
    same_prompts = posttrain_run["last_step"]["prompts"] == trl_run["last_step"]["prompts"]
    print(f"\nlast step: same prompts in both frameworks: {same_prompts}")
    for name, run in (("posttrain", posttrain_run), ("TRL", trl_run)):
        last = run["last_step"]
        sample = last["sample"]
        print(f"  {name:9s} {len(last['prompts'])} prompts, {last['completions']} completions, longest "
              f"{last['max_completion_tokens']} tokens, torch threads {last['torch_threads']}; "
              f"{sample['prompt']!r} -> {sample['completion']!r} ids {sample['completion_ids']}")
    print(f"\n{'':12s}{'mean s/step':>12s}{'median s/step':>15s}")
    for name, key in (("posttrain", "posttrain"), ("TRL", "trl")):
        print(f"{name:12s}{results[key]['mean_s']:12.3f}{results[key]['median_s']:15.3f}")
    print(f"{'TRL/posttrain':12s}{ratio_mean:11.2f}x{ratio_median:14.2f}x")

    report = {
        "settings": {"prompts_per_step": PROMPTS_PER_STEP, "num_generations": NUM_GENERATIONS,
                     "completions_per_step": PROMPTS_PER_STEP * NUM_GENERATIONS, "max_new_tokens": MAX_NEW_TOKENS,
                     "temperature": TEMPERATURE, "top_p": 1.0, "top_k": 0, "lr": LEARNING_RATE, "beta": 0.0,
                     "dtype": "float32", "warmup_steps": args.warmup, "measured_steps": args.steps,
                     "torch_threads": args.threads, "seed": args.seed, "model": TinyModelConfig(seed=0).model_dump(),
                     "task": TASK.model_dump()},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "trl": trl.__version__,
                    "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]}},
        "same_prompts_in_last_step": same_prompts,
        "posttrain": {**results["posttrain"], "step_s": posttrain_run["durations"],
                      "last_step": posttrain_run["last_step"]},
        "trl": {**results["trl"], "step_s": trl_run["durations"], "last_step": trl_run["last_step"]},
        "ratio_trl_over_posttrain": {"mean": ratio_mean, "median": ratio_median},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
