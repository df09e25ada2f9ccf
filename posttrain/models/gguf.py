"""GGUF checkpoints (llama.cpp's format) to plain transformers folders.

transformers reads a GGUF file by dequantising it, but the model it returns still counts as
quantised, so ``save_pretrained`` and training refuse it. Clearing the quantiser and the
``quantization_config`` leaves ordinary full-precision weights, saved once as a normal folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from posttrain.models.loading import ModelLoadError


def gguf_to_hf(folder: str | Path, gguf_file: str, out: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write ``folder/gguf_file`` as a transformers model folder (weights, config, tokenizer) at ``out``."""
    folder, out = Path(folder), Path(out)
    if not (folder / gguf_file).is_file():
        raise ModelLoadError(f"no GGUF file {gguf_file!r} in {folder}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=dtype)
    except (OSError, ValueError, ImportError) as err:
        raise ModelLoadError(f"{folder / gguf_file}: cannot read the GGUF file (is the gguf package installed?): "
                             f"{err}") from err
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
