"""Reading a recipe: YAML file, ``key.path=value`` overrides, validation with readable errors."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from posttrain.config.schema import Recipe

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(ValueError):
    """A recipe that cannot run; the message names each bad field by its dotted path."""


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read ``path``, apply overrides in order and validate; nothing is loaded before this passes."""
    return validate_recipe(read_mapping(path, overrides, "recipe"), source=str(path))


def read_mapping(path: str | Path, overrides: Sequence[str], kind: str) -> dict[str, Any]:
    """A YAML file's mapping with ``key.path=value`` overrides applied."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{kind} file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {kind} must be a mapping of sections, got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    return raw


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in the nested mapping; the value is parsed as YAML (``3``, ``true``, ``[1, 2]``)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} must look like key.path=value")
    parts = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {override!r}: value is not valid YAML: {err}") from err


def validate_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    return validate_as(Recipe, raw, source)


def validate_as(schema: type[Model], raw: dict[str, Any], source: str) -> Model:
    """``raw`` validated against ``schema``; every problem is listed with its dotted path."""
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(error, schema) for error in err.errors()]
        raise ConfigError(f"{source}: {len(lines)} problem(s)\n" + "\n".join(f"  - {line}" for line in lines)) from None


def _describe(error: dict[str, Any], schema: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        hint = _closest_key(loc, schema)
        return f"{dotted}: unknown key" + (f"; did you mean '{hint}'?" if hint else "")
    if error["type"] == "missing":
        return f"{dotted}: required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("value_error", "assertion_error"):
        return f"{dotted}: {message}" if loc else message
    return f"{dotted}: {message} (got {error.get('input')!r})"


def _closest_key(loc: tuple[Any, ...], schema: type[BaseModel]) -> str | None:
    """Closest valid field name for a misspelt key, by walking the schema along ``loc``."""
    model: type[BaseModel] | None = schema
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_of(field.annotation) if field else None
    if model is None:
        return None
    matches = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.5)
    if not matches:
        return None
    return ".".join(str(p) for p in (*loc[:-1], matches[0]))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe (preset switches filled in) as YAML."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
