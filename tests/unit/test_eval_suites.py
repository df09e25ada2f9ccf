"""Suite files: every shipped suite validates; inconsistent suites are refused with the field named."""

from pathlib import Path

import pytest

from posttrain.config.loading import ConfigError
from posttrain.evaluation.suite import load_suite

pytestmark = pytest.mark.unit

EVAL = Path(__file__).parents[2] / "eval"


@pytest.mark.parametrize("path", sorted(EVAL.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_suites_validate(path: Path) -> None:
    suite = load_suite(path)
    assert suite.name == path.stem
    assert suite.scores_pairs == (suite.metrics == ["pair_accuracy"])


@pytest.mark.parametrize(
    ("body", "message"),
    [("metrics: [win_rate]", "win_rate needs baseline"),
     ("metrics: [pair_accuracy, accuracy]", "cannot be combined with generation metrics ['accuracy']"),
     ("metrics: [pass@k]\nk: [4]", "k=[4] needs 1 <= k <= sampling.num_samples=1"),
     ("sampling: {num_samples: 4}", "greedy"),
     ("sampling: {temprature: 1.0}", "sampling.temprature: unknown key; did you mean 'sampling.temperature'")],
)
def test_inconsistent_suites_are_refused(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndata: {{task: {{name: arithmetic}}}}\n{body}\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_suite(path)
