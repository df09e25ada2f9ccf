"""Pre-DPO's two stages from one recipe (ALGORITHMS.md §8.3).

Stage 1 trains a guide from the initial model with ``algorithm.guide`` (DPO against the initial
model, or reference-free SimPO) into ``<output_dir>/guide``; stage 2 restarts from the initial
model and runs DPO with the guide's final weights as the reference, into ``<output_dir>/policy``.
A finished guide stage is not repeated: rerunning the recipe (e.g. with ``trainer.resume=auto``
after an interruption of stage 2) goes straight on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from posttrain.config.schema import Recipe
from posttrain.models.lora import merge_lora_checkpoint
from posttrain.trainers.base import RunResult
from posttrain.trainers.checkpoint import MODEL_DIR, complete_checkpoints, load_state

logger = logging.getLogger(__name__)


def stage_recipes(recipe: Recipe) -> tuple[Recipe, Recipe]:
    """(guide stage, policy stage) recipes; the policy stage's reference is filled in once the guide exists."""
    algo, trainer, out = recipe.algorithm, recipe.trainer, Path(recipe.trainer.output_dir)
    guide_algo = algo.model_copy(update={"preference_loss": algo.guide, "guide": "none",
                                         "beta": algo.guide_beta or algo.beta})
    guide = recipe.model_copy(update={
        "algorithm": guide_algo,
        "trainer": trainer.model_copy(update={"output_dir": str(out / "guide"), "steps": algo.guide_steps or trainer.steps,
                                              "lr": algo.guide_lr or trainer.lr}),
    })
    policy = recipe.model_copy(update={
        "algorithm": algo.model_copy(update={"guide": "none"}),
        "trainer": trainer.model_copy(update={"output_dir": str(out / "policy")}),
    })
    return guide, policy


def guide_finished(guide: Recipe) -> Path | None:
    """The guide's final model when stage 1 already ran to its last step (merged, when it trained adapters)."""
    out = Path(guide.trainer.output_dir)
    found = complete_checkpoints(out)
    if not found or load_state(found[-1])["step"] < guide.trainer.steps:
        return None
    if guide.model.lora.enabled:
        merged = out / "merged"
        return merged if (merged / "config.json").is_file() else merge_lora_checkpoint(found[-1], merged)
    return found[-1] / MODEL_DIR


def run_pre_dpo(recipe: Recipe) -> RunResult:
    from posttrain.trainers import train

    guide, policy = stage_recipes(recipe)
    guide_model = guide_finished(guide)
    if guide_model is None:
        logger.info("Pre-DPO stage 1/2: guide with %s for %d steps -> %s", guide.algorithm.preference_loss,
                    guide.trainer.steps, guide.trainer.output_dir)
        result = train(guide)
        if result.status != "completed" or result.checkpoint is None:
            return result
        guide_model = result.checkpoint / MODEL_DIR
        if recipe.model.lora.enabled:
            guide_model = merge_lora_checkpoint(result.checkpoint, Path(guide.trainer.output_dir) / "merged")
    else:
        logger.info("Pre-DPO stage 1/2 already finished: guide %s", guide_model)
    logger.info("Pre-DPO stage 2/2: DPO from the initial model with the guide as reference -> %s",
                policy.trainer.output_dir)
    policy = policy.model_copy(update={"reference": policy.reference.model_copy(update={"path": str(guide_model)})})
    return train(policy)
