"""Algorithms as named presets of orthogonal switches (DESIGN.md principle 1).

A preset fixes the family (which loop runs it) and the switch values that define the
algorithm; a recipe picks a preset by name and may override any switch. Adding an
algorithm means adding an entry here (and, for a new advantage rule, one estimator in
``estimators.py``), never touching a training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["online", "sft", "reward_model", "preference", "qrpo", "value_model"]


@dataclass(frozen=True)
class Preset:
    family: Family
    description: str
    source: str = ""
    switches: dict[str, Any] = field(default_factory=dict)


_GRPO_LOSS = {"loss_agg_mode": "seq-mean-token-mean", "clip_ratio_low": 0.2, "clip_ratio_high": 0.2}

PRESETS: dict[str, Preset] = {
    "grpo": Preset(
        family="online",
        description="Group-normalised outcome advantages (s − μ)/(σ + ε), clipped token-level surrogate, "
        "each sequence weighted equally.",
        source="Shao et al. 2024, DeepSeekMath (arXiv 2402.03300)",
        switches={"advantage_estimator": "grpo", "norm_adv_by_std": True, **_GRPO_LOSS},
    ),
    "dr_grpo": Preset(
        family="online",
        description="GRPO without the group-std division and with token sums over a constant, removing "
        "the question-difficulty and length biases.",
        source="Liu et al. 2025, Understanding R1-Zero-like training (arXiv 2503.20783)",
        switches={"advantage_estimator": "grpo", "norm_adv_by_std": False,
                  "loss_agg_mode": "seq-mean-token-sum-norm", "clip_ratio_low": 0.2, "clip_ratio_high": 0.2},
    ),
    "dapo": Preset(
        family="online",
        description="GRPO advantages with clip-higher, token-level loss and dynamic sampling that refills the "
        "batch with groups carrying gradient (set overlong_buffer for the overlong penalty).",
        source="Yu et al. 2025, DAPO (arXiv 2503.14476)",
        switches={"advantage_estimator": "grpo", "norm_adv_by_std": True, "loss_agg_mode": "token-mean",
                  "clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "dynamic_sampling": True},
    ),
    "mapo": Preset(
        family="online",
        description="Mixes the GRPO advantage with the percent deviation (s − μ)/μ by the group's certainty "
        "λ(p) = 1 − 4p(1 − p); GRPO's loss otherwise.",
        source="Huang et al. 2025, MAPO (arXiv 2509.18849)",
        switches={"advantage_estimator": "mapo", **_GRPO_LOSS},
    ),
    "bnpo": Preset(
        family="online",
        description="Advantage (s − p)/f(p; α, β) with a Beta density fitted to the batch's group success rates "
        "every step; clip-higher, dual clip 10 and token sums per sequence, as the authors run it.",
        source="Xiao, Zhang, Cao 2025, BNPO (arXiv 2506.02864)",
        switches={"advantage_estimator": "bnpo", "loss_agg_mode": "seq-mean-token-sum", "clip_ratio_low": 0.2,
                  "clip_ratio_high": 0.28, "dual_clip": 10.0},
    ),
    "lens": Preset(
        family="online",
        description="Wrong answers get a confidence-calibrated negative reward, so all-wrong groups carry "
        "gradient (weight α = 0.25); mixed groups are GRPO-normalised.",
        source="Feng et al. 2025, LENS (arXiv 2510.08696)",
        switches={"advantage_estimator": "lens", "lens_negative_weight": 0.25, **_GRPO_LOSS},
    ),
    "ppo": Preset(
        family="online",
        description="Critic-based: outcome reward on the last token (KL to the reference shaped into the token "
        "rewards when beta > 0), GAE λ = 0.95 for policy and critic, whitened advantages, clipped surrogate "
        "and clipped value loss.",
        source="Schulman et al. 2017 (arXiv 1707.06347); Ouyang et al. 2022, InstructGPT (arXiv 2203.02155)",
        switches={"advantage_estimator": "gae", "gae_lambda_policy": 0.95, "gae_lambda_value": 0.95,
                  "whiten_advantages": True, "loss_agg_mode": "token-mean", "clip_ratio_low": 0.2,
                  "clip_ratio_high": 0.2, "value_clip": 0.2, "kl_placement": "reward"},
    ),
    "vc_ppo": Preset(
        family="online",
        description="PPO with value pretraining (the critic alone fits the frozen policy's rollouts first) and "
        "decoupled GAE: Monte-Carlo targets (λ = 1) for the critic, λ = 0.95 for the policy.",
        source="Yuan et al. 2025, VC-PPO (arXiv 2503.01491)",
        switches={"advantage_estimator": "gae", "gae_lambda_policy": 0.95, "gae_lambda_value": 1.0,
                  "whiten_advantages": True, "loss_agg_mode": "token-mean", "clip_ratio_low": 0.2,
                  "clip_ratio_high": 0.2, "value_clip": None, "kl_placement": "reward", "value_warmup_steps": 50},
    ),
    "vapo": Preset(
        family="online",
        description="VC-PPO plus length-adaptive λ_policy = 1 − 1/(α·l), token-level loss, clip-higher, the NLL of "
        "correct samples (μ = 0.1) and group sampling (several samples per prompt).",
        source="Yue et al. 2025, VAPO (arXiv 2504.05118)",
        switches={"advantage_estimator": "gae", "gae_lambda_policy": 0.95, "gae_lambda_value": 1.0,
                  "length_adaptive_alpha": 0.05, "whiten_advantages": True, "loss_agg_mode": "token-mean",
                  "clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "positive_nll_coef": 0.1, "value_clip": None,
                  "kl_placement": "reward", "value_warmup_steps": 50},
    ),
    "dpo": Preset(
        family="preference",
        description="Direct preference optimisation: −log σ(β·h), h the chosen-minus-rejected log-ratio to the "
        "reference; label_smoothing gives conservative DPO.",
        source="Rafailov et al. 2023, DPO (arXiv 2305.18290)",
        switches={"preference_loss": "dpo", "beta": 0.1},
    ),
    "ipo": Preset(
        family="preference",
        description="Regresses the log-ratio margin onto 1/(2τ) (τ = beta), each log-ratio divided by its "
        "completion length as TRL does (ipo_length_normalize).",
        source="Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human Preferences "
        "(arXiv 2310.12036)",
        switches={"preference_loss": "ipo", "beta": 0.1},
    ),
    "simpo": Preset(
        family="preference",
        description="Reference-free: −log σ(β·(logp_c/|y_c| − logp_r/|y_r|) − γ).",
        source="Meng, Xia, Chen 2024, SimPO (arXiv 2405.14734)",
        switches={"preference_loss": "simpo", "beta": 2.0, "simpo_gamma": 0.5},
    ),
    "pre_dpo": Preset(
        family="preference",
        description="Two stages: DPO trains a guide from the initial model; DPO then restarts from the initial "
        "model with the guide as reference, which re-weights pairs by what the guide learned.",
        source="Pan et al. 2025, Pre-DPO (arXiv 2504.15843)",
        switches={"preference_loss": "dpo", "beta": 0.1, "guide": "dpo"},
    ),
    "qrpo": Preset(
        family="qrpo",
        description="Pointwise regression of β·log(π/π_ref) onto the quantile reward (among reference-policy "
        "samples' rewards) minus β·log Z, which is known in closed form.",
        source="Matrenok, Moalla, Gulcehre 2025, QRPO (arXiv 2507.08068)",
        switches={"beta": 0.1, "qrpo_transform": "identity", "qrpo_loss_type": "mse"},
    ),
    "sft": Preset(
        family="sft",
        description="Supervised fine-tuning: token-mean negative log-likelihood of the completion.",
        switches={"loss_agg_mode": "token-mean"},
    ),
    "vas": Preset(
        family="value_model",
        description="Value model for value-augmented sampling: fit V(s ⊕ a) to TD(λ) targets (λ = 0.95, γ = 1) of "
        "the reward of samples from the frozen base model; the base model never changes.",
        source="Han et al. 2024, Value Augmented Sampling (arXiv 2405.06639)",
        switches={"gamma": 1.0, "gae_lambda_value": 0.95, "ivo_rounds": 1},
    ),
    "ivo": Preset(
        family="value_model",
        description="Iterative value optimisation: Monte-Carlo targets (λ = 1) over several samples per prompt, "
        "in rounds whose samples come from the base model guided by the previous round's value model.",
        source="Liu et al. 2025, Iterative Value Function Optimization (arXiv 2503.02368)",
        switches={"gamma": 1.0, "gae_lambda_value": 1.0, "ivo_rounds": 3},
    ),
    "reward_model": Preset(
        family="reward_model",
        description="Bradley-Terry reward model: −log σ(r(chosen) − r(rejected)) on preference pairs, "
        "one-logit sequence-classification head.",
        source="Ouyang et al. 2022, InstructGPT (arXiv 2203.02155)",
    ),
}


def format_presets() -> str:
    """The preset table ``posttrain algos`` prints: name, family, source, description, switches."""
    lines = []
    for name, preset in PRESETS.items():
        lines.append(f"{name}  [{preset.family}]" + (f"  {preset.source}" if preset.source else ""))
        lines.append(f"    {preset.description}")
        for key, value in preset.switches.items():
            lines.append(f"    {key:24s} {value}")
        lines.append("")
    return "\n".join(lines).rstrip()


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(sorted(PRESETS))}") from None
