"""VAS re-weighting and best-of-N (§9.1, §9.3)."""

import pytest
import torch

from posttrain.algos import best_of_n_index, best_of_n_kl_bound, vas_logits

pytestmark = pytest.mark.unit

LOGITS = torch.tensor([[2.0, 1.5, 1.0, 0.5, -1.0]])
TOPK = torch.tensor([[0, 1, 2]])
VALUES = torch.tensor([[0.2, 0.8, 0.5]])


def test_vas_example_restricted_to_top_k() -> None:
    adjusted = vas_logits(LOGITS, TOPK, [VALUES], [2.0])
    assert adjusted[0, :3].tolist() == pytest.approx([1.4, 2.1, 1.0], abs=1e-6)
    assert torch.isinf(adjusted[0, 3:]).all()
    assert adjusted.softmax(-1)[0, :3].tolist() == pytest.approx([0.2714387, 0.5466105, 0.1819508], abs=1e-6)


def test_vas_example_without_restriction() -> None:
    probs = vas_logits(LOGITS, TOPK, [VALUES], [2.0], restrict_to_candidates=False).softmax(-1)
    assert probs[0].tolist() == pytest.approx([0.2391566, 0.4816023, 0.1603115, 0.0972338, 0.0216958], abs=1e-6)


def test_vas_beta_zero_is_base_top_k_and_models_combine() -> None:
    base = vas_logits(LOGITS, TOPK, [VALUES], [0.0])
    assert base[0, :3].tolist() == pytest.approx([2.0, 1.5, 1.0])
    split = vas_logits(LOGITS, TOPK, [VALUES, VALUES], [1.0, 1.0])
    assert torch.allclose(split, vas_logits(LOGITS, TOPK, [VALUES], [2.0]))
    with pytest.raises(ValueError, match="one beta per value model"):
        vas_logits(LOGITS, TOPK, [VALUES], [1.0, 2.0])


def test_best_of_n() -> None:
    assert best_of_n_index(torch.tensor([[0.1, 0.7, 0.7, -0.2], [3.0, 1.0, 2.0, 3.0]])).tolist() == [1, 0]
    assert best_of_n_kl_bound(4) == pytest.approx(0.6362944, abs=1e-6)
    assert best_of_n_kl_bound(1) == 0.0
