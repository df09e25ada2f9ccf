"""Datasets: built-in tasks, local files, hub datasets, prompt rendering and sampling order."""

from posttrain.data.loading import DataError, load_rows
from posttrain.data.prompts import EpochSampler, Example, render_prompt, tokenize_examples

__all__ = ["DataError", "EpochSampler", "Example", "load_rows", "render_prompt", "tokenize_examples"]
