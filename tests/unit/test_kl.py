import pytest
import torch

from posttrain.algos import kl_penalty

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("estimator", "expected"), [("k1", 0.5), ("k2", 0.125), ("k3", 0.1065307), ("abs", 0.5)])
def test_worked_example(estimator: str, expected: float) -> None:
    value = kl_penalty(torch.tensor([-1.0]), torch.tensor([-1.5]), estimator)  # type: ignore[arg-type]
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_k3_is_nonnegative_and_clamped() -> None:
    logp = torch.tensor([-50.0, -1.0, 0.0])
    ref = torch.tensor([0.0, -1.0, -60.0])
    k3 = kl_penalty(logp, ref, "k3")
    assert torch.all(k3 >= 0) and torch.all(k3 <= 10.0) and torch.isfinite(k3).all()


def test_k3_gradient_flows_to_logp() -> None:
    logp = torch.tensor([-1.0], requires_grad=True)
    kl_penalty(logp, torch.tensor([-1.5]), "k3").sum().backward()
    # d/dlogp [e^{ref-logp} - (ref-logp) - 1] = 1 - e^{ref-logp}
    assert logp.grad.item() == pytest.approx(1 - torch.exp(torch.tensor(-0.5)).item(), abs=1e-6)
