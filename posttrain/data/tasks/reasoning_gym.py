"""reasoning-gym tasks as rows: any of its generators, scored by its own scorer (the
``reasoning_gym`` reward), with no code per task."""

from __future__ import annotations

from typing import Any

from posttrain.config.schema import ReasoningGymConfig


def generate_reasoning_gym(spec: ReasoningGymConfig) -> dict[str, list[dict[str, Any]]]:
    """``test`` (the first ``test_size`` problems) and ``train`` splits; each row keeps the
    generator's entry under ``entry`` for the scorer. Problems may repeat across splits if
    the generator has few distinct ones."""
    try:
        import reasoning_gym
    except ImportError as err:
        raise ImportError("data.reasoning_gym needs the reasoning-gym package: "
                          "pip install 'posttrain[tasks]'") from err
    try:
        dataset = reasoning_gym.create_dataset(spec.dataset, size=spec.size + spec.test_size, seed=spec.seed,
                                               **spec.config)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"data.reasoning_gym: cannot create dataset {spec.dataset!r}: {err}") from err
    rows = [{"prompt": entry["question"], "answer": str(entry["answer"]), "entry": entry} for entry in dataset]
    return {"test": rows[: spec.test_size], "train": rows[spec.test_size :]}
