"""Generation engines behind one protocol; the trainer never imports a concrete engine."""

from posttrain.rollout.base import RolloutEngine, SamplingParams
from posttrain.rollout.factory import build_engine

__all__ = ["RolloutEngine", "SamplingParams", "build_engine"]
