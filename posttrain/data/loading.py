"""Turning ``data:`` of a recipe into validated rows, from a built-in task, local files or the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.config.schema import DataConfig
from posttrain.data.tasks.arithmetic import generate_arithmetic
from posttrain.data.tasks.gsm8k import gsm8k_rows
from posttrain.data.tasks.humaneval import humaneval_rows
from posttrain.data.tasks.reasoning_gym import generate_reasoning_gym

#: datasets shipped inside installed packages, by their data.builtin name
BUILTIN = {"humaneval": humaneval_rows, "gsm8k": gsm8k_rows}
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class DataError(ValueError):
    """Data the recipe points at cannot be used; the message names the file, row or field."""


def load_rows(spec: DataConfig, split: str, required: tuple[str, ...]) -> tuple[list[dict[str, Any]], str]:
    """Rows of ``split`` and a human-readable name of where they came from.

    Every row must hold a string in each ``required`` field; the first that does not is
    reported with its row number.
    """
    if spec.task is not None or spec.reasoning_gym is not None or spec.builtin is not None:
        if spec.task is not None:
            splits, name = generate_arithmetic(spec.task), spec.task.name
        elif spec.builtin is not None:
            try:
                splits, name = {"test": BUILTIN[spec.builtin]()}, spec.builtin
            except ImportError as err:
                raise DataError(f"data.builtin={spec.builtin!r}: {err}") from err
        else:
            assert spec.reasoning_gym is not None
            try:
                splits = generate_reasoning_gym(spec.reasoning_gym)
            except ValueError as err:
                raise DataError(str(err)) from err
            name = f"reasoning_gym/{spec.reasoning_gym.dataset}"
        if split not in splits:
            raise DataError(f"task {name!r} has splits {sorted(splits)}, not {split!r}")
        rows, origin = splits[split], f"task:{name}[{split}]"
    else:
        rows, origin = _read_source(spec.path or "", split)
    if not rows:
        raise DataError(f"{origin}: the dataset is empty")
    for index, row in enumerate(rows):
        for field in required:
            value = row.get(field)
            if value is None:
                raise DataError(
                    f"{origin}: row {index} has no field {field!r} (missing or null; columns: {sorted(row)}); "
                    f"set data.{_config_key(spec, field)} to the right column"
                )
            if field == spec.answer_field and isinstance(value, (int, float)):
                continue
            if isinstance(value, list) and field in (spec.prompt_field, spec.chosen_field, spec.rejected_field,
                                                     spec.completion_field):
                _check_messages(value, f"{origin}: row {index} field {field!r}")
                continue
            may_be_empty = (spec.answer_field, spec.chosen_field, spec.rejected_field)  # trainers drop and count those
            if not isinstance(value, str) or (field not in may_be_empty and not value):
                raise DataError(f"{origin}: row {index} field {field!r} must be a non-empty string, got {value!r}")
    return rows, origin


def _check_messages(value: list[Any], where: str) -> None:
    """A chat conversation: a non-empty list of {role, content} string pairs."""
    if not value:
        raise DataError(f"{where}: an empty list of chat messages")
    for message in value:
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise DataError(f"{where}: chat messages must be {{'role': str, 'content': str}} objects; got {message!r}")


def _config_key(spec: DataConfig, field: str) -> str:
    for key in ("prompt_field", "answer_field", "completion_field", "chosen_field", "rejected_field", "reward_field",
                "ref_rewards_field"):
        if getattr(spec, key) == field:
            return key
    return field


def _read_source(path: str, split: str) -> tuple[list[dict[str, Any]], str]:
    """A file (used for every split), a folder holding ``<split>.<ext>``, or a hub dataset id."""
    import datasets

    local = Path(path).expanduser()
    if local.is_dir():
        candidates = [local / f"{split}{ext}" for ext in LOCAL_FORMATS]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise DataError(f"data.path={path!r}: no {split}.jsonl/.json/.parquet/.csv in the folder")
        local = found[0]
    if local.is_file():
        builder = LOCAL_FORMATS.get(local.suffix)
        if builder is None:
            raise DataError(f"data.path={path!r}: unsupported file type {local.suffix!r}; use {sorted(LOCAL_FORMATS)}")
        try:
            table = datasets.load_dataset(builder, data_files=str(local), split="train")
        except Exception as err:  # datasets raises many types for unreadable files
            raise DataError(f"{local}: cannot be read as {builder}: {err}") from err
        return table.to_list(), str(local)
    if path.startswith((".", "/", "~")):
        raise DataError(f"data.path={path!r}: file or folder not found")
    try:
        table = datasets.load_dataset(path, split=split)
    except Exception as err:
        raise DataError(f"data.path={path!r}: not a local file and not loadable from the hub: {err}") from err
    return table.to_list(), f"{path}[{split}]"
