"""Decoding methods that improve a frozen model at inference time: value-guided sampling (VAS)
and best-of-N, both behind the rollout-engine protocol so evaluation treats them as models."""

from posttrain.decoding.best_of_n import BestOfNEngine
from posttrain.decoding.guided import DecodingCost, ValueGuidedEngine
from posttrain.decoding.value_head import ValueGuide, load_value_guide

__all__ = ["BestOfNEngine", "DecodingCost", "ValueGuide", "ValueGuidedEngine", "load_value_guide"]
