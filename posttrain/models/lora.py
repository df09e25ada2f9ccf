"""Turning a LoRA checkpoint into a full model that plain transformers loads."""

from __future__ import annotations

from pathlib import Path

from posttrain.config.loading import load_recipe
from posttrain.models.loading import ModelLoadError, load_causal_lm, load_tokenizer, newest_run_model


def merge_lora_checkpoint(checkpoint: str | Path, output_dir: str | Path) -> Path:
    """Fold the adapters of ``checkpoint`` (a checkpoint folder, or a run folder meaning its
    newest complete checkpoint) into the base weights named by its saved recipe and write
    the merged model and tokenizer to ``output_dir``."""
    from peft import PeftModel

    checkpoint = Path(checkpoint)
    adapters = checkpoint / "model"
    if not (adapters / "adapter_config.json").is_file():
        newest = newest_run_model(checkpoint)
        if newest is None or not (newest / "adapter_config.json").is_file():
            raise ModelLoadError(f"{checkpoint} holds no LoRA adapters (no model/adapter_config.json in it or in "
                                 "a complete checkpoint under it)")
        adapters, checkpoint = newest, newest.parent
    recipe_file = checkpoint / "recipe.yaml"
    if not recipe_file.is_file():
        raise ModelLoadError(f"{checkpoint} has no recipe.yaml naming the base model of its adapters")
    base_spec = load_recipe(recipe_file).model
    base_spec = base_spec.model_copy(update={"lora": base_spec.lora.model_copy(update={"enabled": False})})
    base = load_causal_lm(base_spec, device=None)
    merged = PeftModel.from_pretrained(base, str(adapters)).merge_and_unload()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    load_tokenizer(base_spec).save_pretrained(out)
    return out
