"""Sample-based evaluation metrics: the unbiased pass@k estimator, majority-vote accuracy, win rate."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n is correct), c of n correct:
    ``1 − C(n−c, k)/C(n, k)`` (Chen et al. 2021), computed as a stable product."""
    if not 0 < k <= n:
        raise ValueError(f"pass@k needs 0 < k <= n samples; got k={k}, n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"correct count c={c} must be within [0, n={n}]")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_at_k(votes: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> bool:
    """Whether the most frequent answer among the first ``k`` samples is correct. Samples whose
    answer could not be extracted (``None``) do not vote; ties go to the answer seen first."""
    if not 0 < k <= len(votes):
        raise ValueError(f"maj@k needs 0 < k <= {len(votes)} samples; got k={k}")
    counts = Counter(v for v in votes[:k] if v is not None)
    if not counts:
        return False
    top = max(counts.values())
    winner = next(v for v in votes[:k] if v is not None and counts[v] == top)
    return any(ok for v, ok in zip(votes[:k], correct[:k]) if v == winner)


def win_rate(rewards: Sequence[float], baseline_rewards: Sequence[float]) -> float:
    """Share of samples whose reward beats the baseline's sample for the same prompt; a tie counts half."""
    if len(rewards) != len(baseline_rewards) or not rewards:
        raise ValueError(f"win rate compares sample by sample: got {len(rewards)} and {len(baseline_rewards)} rewards")
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(rewards, baseline_rewards))
    return wins / len(rewards)
