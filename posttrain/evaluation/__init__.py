"""Evaluation: held-out accuracy of a policy on a task."""

from posttrain.evaluation.accuracy import AccuracyResult, greedy_accuracy

__all__ = ["AccuracyResult", "greedy_accuracy"]
