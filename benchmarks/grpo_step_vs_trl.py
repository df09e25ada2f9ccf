"""Seconds per GRPO step: posttrain's OnlineTrainer against TRL's GRPOTrainer (no vLLM), in one process.

Both frameworks start from the very same tiny Qwen2 checkpoint (saved once to a temporary folder) and train on
the same arithmetic prompts (both draw them in the same seeded order) with the same group size, generation
length, sampling, loss, optimiser and batch: one rollout of ``PROMPTS_PER_STEP × NUM_GENERATIONS`` completions
and one AdamW update per step. A step is timed from its start to the end of the optimiser update (prompt
tokenisation, generation, reward, advantages, loss, backward, clipping, AdamW, lr schedule); logging and
checkpointing are outside that window in both frameworks. The two alternate step by step (a TRL callback runs
posttrain's step after each TRL step), so load from other processes hits both alike. The first ``--warmup``
steps of each are not counted.

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
    parser.add_argument("--out", type=Path, default=Path("runs/bench/grpo_step_vs_trl.json"),
                        help="where the JSON results go")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def save_tiny_checkpoint(folder: Path) -> None:
    model, tokenizer = build_tiny_model(TinyModelConfig(seed=0))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# ------------------------------------------------------------------------------------------------ posttrain
class PosttrainRun:
    """posttrain's OnlineTrainer, set up once and stepped from outside; keeps the last rollout."""

    def __init__(self, model_dir: Path, work_dir: Path, args: argparse.Namespace) -> None:
        recipe = validate_recipe({
            "model": {"path": str(model_dir), "device": "cpu", "dtype": "float32"},
            "data": {"task": TASK.model_dump()},
            "algorithm": {"name": "grpo", "beta": 0.0},
            "rollout": {"num_generations": NUM_GENERATIONS, "max_new_tokens": MAX_NEW_TOKENS,
                        "temperature": TEMPERATURE, "top_p": 1.0, "top_k": 0},
            "rewards": [{"name": "exact_answer"}],
            "trainer": {"steps": args.warmup + args.steps, "batch_size": PROMPTS_PER_STEP,
                        "lr": LEARNING_RATE, "seed": args.seed, "torch_threads": args.threads,
                        "output_dir": str(work_dir / "posttrain"), "eval_every": 0, "checkpoint_every": 0},
            "logging": {"progress": False},
        })
        self.trainer = build_trainer(recipe)
        self.trainer.setup()
        self.rollout: RolloutBatch | None = None
        self._generate = self.trainer.engine.generate
        self.trainer.engine.generate = self._keep_rollout

    def _keep_rollout(self, *args: Any, **kwargs: Any) -> RolloutBatch:
        self.rollout = self._generate(*args, **kwargs)
        return self.rollout

    def step(self, step: int) -> tuple[float, dict[str, Any]]:
        """One GRPO step as ``Trainer.run`` takes it (train_step, then the lr schedule): seconds, metrics."""
        start = time.perf_counter()
        metrics = self.trainer.train_step(step)
        self.trainer.scheduler.step()
        return time.perf_counter() - start, metrics

    def last_step(self) -> dict[str, Any]:
        assert self.rollout is not None
        batch = self.rollout
        prompts = self.trainer.tokenizer.batch_decode(batch.prompt_ids, skip_special_tokens=True)
        completion_ids = [ids[mask.bool()].tolist()
                          for ids, mask in zip(batch.response_ids, batch.response_mask)]
        return last_step(prompts, batch.completions, completion_ids, torch.get_num_threads())


# ------------------------------------------------------------------------------------------------------ TRL
class ExactAnswer:
    """TRL reward: exact match of the stripped completion (posttrain's ``exact_answer``); keeps the batch."""

    def __init__(self) -> None:
        self.last: tuple[list[str], list[str], list[list[int]]] = ([], [], [])
        self.mean_reward = 0.0

    def __call__(self, prompts: list[str], completions: list[str], completion_ids: list[list[int]],
                 answer: list[str], **_: Any) -> list[float]:
        self.last = (prompts, completions, completion_ids)
        rewards = [float(answer_matches(c, a)) for c, a in zip(completions, answer)]
        self.mean_reward = sum(rewards) / len(rewards)
        return rewards


class AlternatingSteps(TrainerCallback):
    """Times each TRL optimiser step (``on_step_begin`` to ``on_step_end``), then runs posttrain's step of the
    same number, so the two frameworks alternate step by step and share whatever else the machine is doing."""

    def __init__(self, posttrain: PosttrainRun, reward: ExactAnswer, warmup: int) -> None:
        self.posttrain, self.reward, self.warmup = posttrain, reward, warmup
        self.durations: dict[str, list[float]] = {"posttrain": [], "trl": []}
        self.trl_threads = 0
        self._start = 0.0

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                      **kwargs: Any) -> None:
        self.trl_threads = torch.get_num_threads()
        self._start = time.perf_counter()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        trl_s = time.perf_counter() - self._start
        step = state.global_step
        posttrain_s, metrics = self.posttrain.step(step)
        measured = step > self.warmup
        if measured:
            self.durations["trl"].append(trl_s)
            self.durations["posttrain"].append(posttrain_s)
        print(f"  step {step:3d} ({'measured' if measured else 'warm-up':8s})"
              f"  posttrain {posttrain_s:6.3f} s (reward {metrics['reward/mean']:.3f},"
              f" max len {metrics['response_length/max']:.0f})"
              f"  TRL {trl_s:6.3f} s (reward {self.reward.mean_reward:.3f},"
              f" max len {max(map(len, self.reward.last[2]))})", flush=True)


def trl_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every GRPOConfig field the benchmark sets (besides output_dir); the rest are TRL 1.16's defaults."""
    completions_per_step = PROMPTS_PER_STEP * NUM_GENERATIONS
    return dict(
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


def run_trl_with_posttrain(model_dir: Path, work_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    rows = generate_arithmetic(TASK)["train"]
    dataset = datasets.Dataset.from_dict({"prompt": [row["prompt"] for row in rows],
                                          "answer": [row["answer"] for row in rows]})
    posttrain = PosttrainRun(model_dir, work_dir, args)
    reward = ExactAnswer()
    alternating = AlternatingSteps(posttrain, reward, args.warmup)
    config = GRPOConfig(output_dir=str(work_dir / "trl"), **trl_settings(args))
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=reward, args=config, train_dataset=dataset,
                          callbacks=[alternating])
    trainer.remove_callback(PrinterCallback)
    generation = trainer.generation_config
    tokenizer = trainer.processing_class
    print(f"TRL generation: max_new_tokens={generation.max_new_tokens} pad={tokenizer.pad_token!r} "
          f"(id {generation.pad_token_id}) eos={tokenizer.eos_token!r} (ids {generation.eos_token_id}) "
          f"do_sample={generation.do_sample} temperature={generation.temperature} top_p={generation.top_p} "
          f"top_k={generation.top_k}", flush=True)
    print(f"{args.warmup} warm-up + {args.steps} measured steps, alternating TRL and posttrain", flush=True)
    torch.set_num_threads(args.threads)
    trainer.train()
    return {
        "posttrain": {"durations": alternating.durations["posttrain"], "last_step": posttrain.last_step()},
        "trl": {"durations": alternating.durations["trl"],
                "last_step": last_step(*reward.last, alternating.trl_threads)},
    }


# ----------------------------------------------------------------------------------------------- reporting
def last_step(prompts: list[str], completions: list[str], completion_ids: list[list[int]],
              threads: int) -> dict[str, Any]:
    """What the last step generated: its prompts (one per group), one sample, the longest completion."""
    return {"completions": len(completions), "prompts": list(dict.fromkeys(prompts)),
            "sample": {"prompt": prompts[0], "completion": completions[0],
                       "completion_ids": completion_ids[0]},
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
        runs = run_trl_with_posttrain(model_dir, work_dir, args)

    results = {name: summarise(run["durations"]) for name, run in runs.items()}
    ratio_mean = results["trl"]["mean_s"] / results["posttrain"]["mean_s"]
    ratio_median = results["trl"]["median_s"] / results["posttrain"]["median_s"]
    same_prompts = runs["posttrain"]["last_step"]["prompts"] == runs["trl"]["last_step"]["prompts"]
    print(f"\nlast step: same prompts in both frameworks: {same_prompts}")
    for name, key in (("posttrain", "posttrain"), ("TRL", "trl")):
        last = runs[key]["last_step"]
        sample = last["sample"]
        print(f"  {name:9s} {len(last['prompts'])} prompts, {last['completions']} completions, longest "
              f"{last['max_completion_tokens']} tokens, torch threads {last['torch_threads']}; "
              f"{sample['prompt']!r} -> {sample['completion']!r} ids {sample['completion_ids']}")
    print(f"\n{'':14s}{'mean s/step':>12s}{'median s/step':>15s}")
    for name, key in (("posttrain", "posttrain"), ("TRL", "trl")):
        print(f"{name:14s}{results[key]['mean_s']:12.3f}{results[key]['median_s']:15.3f}")
    print(f"{'TRL/posttrain':14s}{ratio_mean:11.2f}x{ratio_median:14.2f}x")

    report = {
        "settings": {"prompts_per_step": PROMPTS_PER_STEP, "num_generations": NUM_GENERATIONS,
                     "completions_per_step": PROMPTS_PER_STEP * NUM_GENERATIONS,
                     "max_new_tokens": MAX_NEW_TOKENS, "temperature": TEMPERATURE, "top_p": 1.0, "top_k": 0,
                     "lr": LEARNING_RATE, "beta": 0.0, "dtype": "float32", "warmup_steps": args.warmup,
                     "measured_steps": args.steps, "torch_threads": args.threads, "seed": args.seed,
                     "model": TinyModelConfig(seed=0).model_dump(), "task": TASK.model_dump(),
                     "trl_config": trl_settings(args)},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "trl": trl.__version__,
                    "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]}},
        "same_prompts_in_last_step": same_prompts,
        **{name: {**results[name], "step_s": run["durations"], "last_step": run["last_step"]}
           for name, run in runs.items()},
        "ratio_trl_over_posttrain": {"mean": ratio_mean, "median": ratio_median},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
