"""Value-guided decoding and best-of-N engines on tiny random models: the cached value evaluation
equals a full forward, β = 0 with every token as a candidate is plain greedy decoding, best-of-N
keeps the best sample and breaks ties towards the first, and bad input is named."""

import pytest
import torch

from posttrain.batch import RolloutBatch
from posttrain.config.schema import RewardConfig, TinyModelConfig
from posttrain.decoding import BestOfNEngine, ValueGuide, ValueGuidedEngine
from posttrain.decoding.methods import DecodeSpec, add_decoding_arguments, decode_spec_from_args
from posttrain.decoding.value_head import state_values
from posttrain.models.tiny import build_tiny_model
from posttrain.rewards import RewardSet
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import HFRolloutEngine, left_pad

pytestmark = pytest.mark.unit

TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)


@pytest.fixture(scope="module")
def models():
    base, tokenizer = build_tiny_model(TINY)
    value, _ = build_tiny_model(TINY.model_copy(update={"seed": 1}), head="value")
    prompts = [tokenizer(text)["input_ids"] for text in ("12+34=", "7+5=", "100+1=")]  # different lengths
    return base.eval(), value.eval(), tokenizer, prompts


def test_beta_zero_over_the_whole_vocabulary_is_greedy_decoding(models) -> None:
    base, value, tokenizer, prompts = models
    sampling = SamplingParams(max_new_tokens=6, greedy=True)
    expected = HFRolloutEngine(base, tokenizer).generate(prompts, 1, sampling)
    guided = ValueGuidedEngine(base, tokenizer, [ValueGuide(value, 0.0, None)], top_k=len(tokenizer))
    got = guided.generate(prompts, 1, sampling)
    assert torch.equal(got.response_ids, expected.response_ids)
    assert got.completions == expected.completions


def test_cached_candidate_values_equal_a_full_forward(models) -> None:
    base, value, tokenizer, prompts = models
    guided = ValueGuidedEngine(base, tokenizer, [ValueGuide(value, 3.0, None)], top_k=5)
    torch.manual_seed(0)
    batch = guided.generate(prompts, 2, SamplingParams(max_new_tokens=6))
    width = batch.response_ids.shape[1]
    with torch.no_grad():
        full, _ = state_values(value, batch.input_ids, batch.attention_mask, width, None)
    for row, recorded in enumerate(batch.metadata["guide_values"]):
        assert torch.allclose(torch.tensor(recorded), full[row, : len(recorded)], atol=1e-5)
    # cost: one base evaluation and k value evaluations per row per step
    assert guided.cost.scorer_token_evals == 5 * guided.cost.base_token_evals


def test_guided_log_probs_are_those_of_the_reweighted_top_k(models) -> None:
    base, value, tokenizer, prompts = models
    guided = ValueGuidedEngine(base, tokenizer, [ValueGuide(value, 0.0, None)], top_k=1)
    batch = guided.generate(prompts, 2, SamplingParams(max_new_tokens=4))
    greedy = HFRolloutEngine(base, tokenizer).generate(prompts, 2, SamplingParams(max_new_tokens=4, greedy=True))
    assert torch.equal(batch.response_ids, greedy.response_ids)  # one candidate: nothing to sample
    assert torch.all(batch.sampling_logp == 0)  # log 1


def test_value_model_with_another_vocabulary_is_refused(models) -> None:
    base, _, tokenizer, _ = models
    other = build_tiny_model(TINY, head="value")[0]
    other.resize_token_embeddings(len(tokenizer) + 8)
    with pytest.raises(ValueError, match="must share the base model's tokenizer"):
        ValueGuidedEngine(base, tokenizer, [ValueGuide(other, 1.0, None, name="other")])


class FixedEngine:
    """Returns the same completions for every prompt (a stand-in for sampling)."""

    def __init__(self, tokenizer, completions: list[str]) -> None:
        self.tokenizer, self.completions = tokenizer, completions

    def generate(self, prompts, num_samples, sampling) -> RolloutBatch:
        assert num_samples % len(self.completions) == 0
        texts = self.completions * (len(prompts) * num_samples // len(self.completions))
        reversed_ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"][::-1] for t in texts]
        ids, mask = left_pad(reversed_ids, 0)  # flipped back below: right-padded responses
        prompt_ids, prompt_mask = left_pad([list(p) for p in prompts for _ in range(num_samples)], 0)
        return RolloutBatch(prompt_ids, prompt_mask, ids.flip(1), mask.flip(1), torch.zeros(ids.shape),
                            [i for i in range(len(prompts)) for _ in range(num_samples)], texts,
                            torch.ones(len(texts), dtype=torch.bool))

    def sync_weights(self, model) -> None:
        pass


def test_best_of_n_keeps_the_best_sample_and_the_first_of_ties(models) -> None:
    _, _, tokenizer, _ = models
    prompts = [[1, 2], [3]]
    engine = BestOfNEngine(FixedEngine(tokenizer, ["5", "7", "7", "9"]), tokenizer,
                           RewardSet([RewardConfig(name="exact_answer")]), n=4,
                           answers={(1, 2): "7", (3,): "9"})
    batch = engine.generate(prompts, 1, SamplingParams(max_new_tokens=2))
    assert batch.completions == ["7", "9"]
    assert batch.metadata["best_of_n_scores"] == [[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    assert engine.kl_bound == pytest.approx(0.6362944, abs=1e-6)
    assert batch.group_ids == [0, 1]


def test_decoding_options_are_checked() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_decoding_arguments(parser)
    spec = decode_spec_from_args(parser.parse_args(["--method", "vas", "--value-model", "a=0.5",
                                                    "--value-model", "b", "--beta", "3"]))
    assert spec.value_models == (("a", 0.5), ("b", 3.0))
    assert spec.label == "vas(β=0.5, β=3, k=10)"
    with pytest.raises(ValueError, match="must be a number"):
        decode_spec_from_args(parser.parse_args(["--method", "vas", "--value-model", "a=high"]))
    with pytest.raises(ValueError, match="needs at least one --value-model"):
        DecodeSpec("vas")
    with pytest.raises(ValueError, match="needs a scorer"):
        DecodeSpec("best-of-n")
