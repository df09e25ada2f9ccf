"""The README's quickstart, end to end: RL goes beyond what SFT on flawed demonstrations reaches."""

from pathlib import Path

import pytest

from posttrain.quickstart import run_quickstart

pytestmark = pytest.mark.slow


def test_quickstart_rl_gains_at_least_20_points(tmp_path: Path) -> None:
    summary = run_quickstart("recipes/quickstart", tmp_path, seed=0)
    results = summary["results"]
    start = results["after SFT (start of RL)"]
    assert 0.2 <= start["all"] <= 0.5  # partly right, and rarely right on carries it was shown wrongly
    assert start["units_carry"] < 0.15
    assert summary["rl_gain_points"] >= 20
    # the verifier taught what the demonstrations got wrong; more SFT only entrenches the flaw
    assert results["GRPO"]["units_carry"] > start["units_carry"] + 0.2
    continued = next(v for k, v in results.items() if k.startswith("SFT continued"))
    assert continued["units_carry"] < 0.1
    assert (tmp_path / "reward.png").stat().st_size > 5000
