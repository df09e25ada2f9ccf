"""Reference log-probs of a fixed dataset, computed once and cached across runs.

The cache key is what determines the numbers and nothing else: a fingerprint of the
reference weights and the exact token ids fed to it (which already fix the tokenizer, the
chat template, the data and the length limits). A second run on the same data and
reference loads the file instead of running the reference again; anything that changes
the inputs changes the key.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from posttrain.progress import ProgressReporter
from posttrain.trainers.logprobs import completion_logp_sums

logger = logging.getLogger(__name__)

SAMPLED_VALUES = 4096  # per tensor, evenly strided


def default_cache_dir() -> Path:
    root = os.environ.get("POSTTRAIN_CACHE") or Path.home() / ".cache" / "posttrain"
    return Path(root) / "reference_logprobs"


def weights_fingerprint(named_parameters: Iterable[tuple[str, torch.Tensor]]) -> str:
    """Hash of every tensor's name, shape, dtype and an evenly strided sample of its values: cheap on
    billions of parameters, and any training step or different checkpoint changes it."""
    digest = hashlib.sha256()
    for name, tensor in named_parameters:
        flat = tensor.detach().reshape(-1)
        stride = max(1, flat.numel() // SAMPLED_VALUES)
        sample = flat[::stride][:SAMPLED_VALUES].float().cpu().numpy()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(sample.tobytes())
    return digest.hexdigest()


def sequences_key(fingerprint: str, sequences: Iterable[list[int]]) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    for ids in sequences:
        digest.update(np.asarray(ids, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:32]


@torch.no_grad()
def score_completions(model: torch.nn.Module, prompts: list[list[int]], completions: list[list[int]], pad: int,
                      device: torch.device, batch_size: int, label: str, progress: bool) -> torch.Tensor:
    """Summed completion log-probs of every (prompt, completion), in batches, on the CPU ([N])."""
    sums = []
    with ProgressReporter(len(prompts), 0, enabled=progress, label=label) as bar:
        for start in range(0, len(prompts), batch_size):
            end = start + batch_size
            logp, _ = completion_logp_sums(model, prompts[start:end], completions[start:end], pad, device)
            sums.append(logp.cpu())
            bar.update(min(end, len(prompts)), {})
    return torch.cat(sums) if sums else torch.zeros(0)


def cached_or_computed(cache_dir: Path | None, key: str, compute) -> torch.Tensor:
    """The tensor stored under ``key``, or ``compute()``'s result, stored (atomically) for the next run.
    ``cache_dir=None`` computes without storing."""
    if cache_dir is None:
        return compute()
    target = cache_dir / f"{key}.pt"
    if target.is_file():
        try:
            logger.info("reference log-probs loaded from %s", target)
            return torch.load(target, weights_only=True)
        except (OSError, RuntimeError) as err:
            logger.warning("unreadable reference log-prob cache %s (%s); recomputing", target, err)
    values = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    torch.save(values, partial)
    partial.replace(target)
    logger.info("reference log-probs cached in %s", target)
    return values
