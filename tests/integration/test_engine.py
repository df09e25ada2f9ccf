import pytest
import torch

from posttrain.config import TinyModelConfig
from posttrain.models import build_tiny_model
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine, response_mask_until_eos
from posttrain.trainers.logprobs import response_logprobs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine() -> HFRolloutEngine:
    model, tokenizer = build_tiny_model(TinyModelConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2))
    return HFRolloutEngine(model, tokenizer, batch_size=5)


def prompts(engine: HFRolloutEngine) -> list[list[int]]:
    return [engine.tokenizer(t)["input_ids"] for t in ["1+1=", "12+34=", "987-6=", "5="]]


def test_response_mask_stops_after_first_eos() -> None:
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0]])
    assert response_mask_until_eos(ids, [2]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_match_recomputed(engine: HFRolloutEngine, temperature: float) -> None:
    """Left padding, position ids and temperature are handled identically by generation and training."""
    torch.manual_seed(0)
    batch = engine.generate(prompts(engine), 3, SamplingParams(max_new_tokens=6, temperature=temperature))
    assert batch.group_ids == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert batch.prompt_mask.sum(dim=1).tolist() == [4] * 3 + [6] * 3 + [6] * 3 + [2] * 3
    with torch.no_grad():
        logp, _ = response_logprobs(engine.model, batch.input_ids, batch.attention_mask,
                                    batch.response_ids.shape[1], temperature)
    mask = batch.response_mask.bool()
    assert torch.allclose(logp[mask], batch.sampling_logp[mask], atol=1e-4)
    assert torch.all(batch.sampling_logp[~mask] == 0)


def test_greedy_is_deterministic_and_finished_flags(engine: HFRolloutEngine) -> None:
    sampling = SamplingParams(max_new_tokens=4, greedy=True)
    a = engine.generate(prompts(engine), 2, sampling)
    b = engine.generate(prompts(engine), 2, sampling)
    assert a.completions == b.completions and a.completions[0] == a.completions[1]
    eos = engine.tokenizer.eos_token_id
    for ids, mask, finished in zip(a.response_ids, a.response_mask, a.finished):
        assert bool(finished) == bool((ids[mask.bool()] == eos).any())
