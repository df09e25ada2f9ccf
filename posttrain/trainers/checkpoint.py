"""Checkpoints: a folder written under a temporary name, completed by a manifest, then renamed.

Layout of ``<output_dir>/checkpoints/step-000042/``: ``model/`` (``save_pretrained``
weights and tokenizer), ``trainer_state.pt`` (optimiser, scheduler, RNG, data order,
counters), ``zero/`` (DeepSpeed's sharded engine state, launched runs only), ``recipe.yaml``
and ``manifest.json``, written last. A folder without a manifest is never picked up, so a
crash mid-write cannot pass for a checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

MANIFEST = "manifest.json"
STATE_FILE = "trainer_state.pt"
MODEL_DIR = "model"
ZERO_DIR = "zero"


class World(Protocol):
    """The processes writing one checkpoint together: the main one writes the shared files."""

    is_main: bool
    distributed: bool

    def barrier(self) -> None: ...


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    save_model: Any,
    state: dict[str, Any],
    recipe_yaml: str,
    keep: int | None,
    world: World | None = None,
) -> Path:
    """Write the checkpoint of ``step``; ``save_model(folder)`` writes the HF-format weights (on
    every process of ``world``, which all write into the one temporary folder)."""
    main = world is None or world.is_main
    root = checkpoint_root(output_dir)
    final = root / f"step-{step:06d}"
    tag = _tmp_tag(world)
    tmp = root / f".tmp-step-{step:06d}-{tag}"
    if main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    if world is not None:
        world.barrier()
    save_model(tmp / MODEL_DIR)
    if world is not None:
        world.barrier()
    if main:
        _complete(root, tmp, final, step, state, recipe_yaml, keep, tag)
    if world is not None:
        world.barrier()
    return final


def _tmp_tag(world: World | None) -> str:
    """A launched world shares one temporary folder; a single process owns one named by its pid."""
    return "world" if world is not None and world.distributed else str(os.getpid())


def _complete(root: Path, tmp: Path, final: Path, step: int, state: dict[str, Any], recipe_yaml: str,
              keep: int | None, tag: str) -> None:
    torch.save(state, tmp / STATE_FILE)
    (tmp / "recipe.yaml").write_text(recipe_yaml)
    manifest = {"step": step, "time": time.time(), "files": sorted(p.name for p in tmp.iterdir())}
    with (tmp / MANIFEST).open("w") as fh:
        json.dump(manifest, fh)
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _prune(root, keep, tag)


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith("step-") and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: json.loads((p / MANIFEST).read_text())["step"])


def resolve_resume(output_dir: str | Path, resume: str) -> Path | None:
    """The checkpoint ``trainer.resume`` points at: none, the newest complete one, or a given folder."""
    if resume == "none":
        return None
    if resume == "auto":
        found = complete_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / MANIFEST).is_file():
        raise FileNotFoundError(f"trainer.resume={resume!r} is not a complete checkpoint (no {MANIFEST})")
    return path


def claim_fresh_output_dir(output_dir: str | Path, overwrite: bool) -> None:
    """A fresh run must not mix its checkpoints with an earlier run's."""
    root = checkpoint_root(output_dir)
    if not root.is_dir() or not any(root.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"trainer.output_dir={str(output_dir)!r} already holds checkpoints of an earlier run; "
            "set trainer.resume=auto to continue it, trainer.overwrite=true to replace it, or another output_dir"
        )
    shutil.rmtree(root)


def load_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, weights_only=False)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _prune(root: Path, keep: int | None, tag: str) -> None:
    for stale in root.glob(".tmp-step-*"):
        if not stale.name.endswith(f"-{tag}"):
            shutil.rmtree(stale, ignore_errors=True)
    if keep is None:
        return
    for old in complete_checkpoints(root.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
