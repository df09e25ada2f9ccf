import pytest
import torch

from posttrain.batch import RolloutBatch, concat_batches

pytestmark = pytest.mark.unit


def _batch(prompt_width: int, response_width: int, groups: list[int], fill: float) -> RolloutBatch:
    rows = len(groups)
    return RolloutBatch(
        prompt_ids=torch.full((rows, prompt_width), 7), prompt_mask=torch.ones(rows, prompt_width, dtype=torch.long),
        response_ids=torch.full((rows, response_width), 9),
        response_mask=torch.ones(rows, response_width, dtype=torch.long),
        sampling_logp=torch.full((rows, response_width), fill), group_ids=groups,
        completions=[f"c{fill}"] * rows, finished=torch.ones(rows, dtype=torch.bool),
        scores=torch.full((rows,), fill), metadata={"correct": [True] * rows},
    )


def test_concat_pads_prompts_left_responses_right_and_keeps_groups_apart() -> None:
    merged = concat_batches([_batch(3, 2, [0, 0], 1.0), _batch(2, 4, [0, 0, 1, 1], 2.0)])
    assert merged.prompt_ids.shape == (6, 3) and merged.response_ids.shape == (6, 4)
    assert merged.prompt_mask[2].tolist() == [0, 1, 1]  # left padding
    assert merged.response_mask[0].tolist() == [1, 1, 0, 0]  # right padding
    assert merged.sampling_logp[0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert merged.group_ids == [0, 0, 1, 1, 2, 2]
    assert merged.completions[-1] == "c2.0" and merged.metadata["correct"] == [True] * 6
    assert merged.old_logp is None and merged.scores.tolist() == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_concat_refuses_half_filled_fields() -> None:
    first, second = _batch(2, 2, [0], 1.0), _batch(2, 2, [0], 1.0)
    first.old_logp = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="old_logp"):
        concat_batches([first, second])
