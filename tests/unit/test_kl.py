import pytest
import torch

from posttrain.algos import adaptive_kl_coef, kl_penalty

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


def test_adaptive_kl_controller_moves_beta_towards_the_target() -> None:
    # KL three times the target: the error clips at +0.2, so β grows by 0.2·64/10000
    assert adaptive_kl_coef(0.1, 0.3, 0.1, 64, 10000) == pytest.approx(0.100128, abs=1e-9)
    # KL at half the target: error −0.5 clips at −0.2
    assert adaptive_kl_coef(0.1, 0.05, 0.1, 64, 10000) == pytest.approx(0.099872, abs=1e-9)
    assert adaptive_kl_coef(0.1, 0.1, 0.1, 64, 10000) == pytest.approx(0.1)
