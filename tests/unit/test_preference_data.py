"""Preference pairs and pointwise rows: string and chat-message shapes, dropping, truncation,
the reference log-prob cache key, and resumable writing."""

import json
from pathlib import Path

import pytest
import torch

from posttrain.config.schema import DataConfig, TaskConfig
from posttrain.data.loading import DataError, load_rows
from posttrain.data.preference import OfflineEncoder, build_pairs, build_pointwise
from posttrain.data.sampling import write_in_chunks
from posttrain.models.tokenizer import build_byte_tokenizer
from posttrain.trainers.reference_logprobs import cached_or_computed, sequences_key, weights_fingerprint

pytestmark = pytest.mark.unit

TOKENIZER = build_byte_tokenizer()
EOS = TOKENIZER.eos_token_id


def encoder(**data: object) -> OfflineEncoder:
    spec = DataConfig(task=TaskConfig(), **data)
    return OfflineEncoder(TOKENIZER, spec, context=64)


def text(ids: list[int]) -> str:
    return TOKENIZER.decode(ids)


def test_string_pairs_end_with_eos_and_bad_pairs_are_dropped_and_counted() -> None:
    rows = [
        {"prompt": "12+34=", "chosen": "46", "rejected": "36"},
        {"prompt": "1+1=", "chosen": "", "rejected": "3"},
        {"prompt": "2+2=", "chosen": "4", "rejected": "   "},
        {"prompt": "3+3=", "chosen": "6", "rejected": "6"},
    ]
    pairs, counts = build_pairs(rows, "rows", encoder())
    assert [p.row for p in pairs] == [0]
    assert text(pairs[0].prompt_ids) == "12+34="
    assert pairs[0].chosen_ids[-1] == EOS and text(pairs[0].chosen_ids[:-1]) == "46"
    assert (counts.empty, counts.identical) == (2, 1)
    assert counts.metrics("train")["data/train_dropped_empty"] == 2


def test_chat_message_pairs_render_with_the_template_like_online_prompts() -> None:
    prompt = [{"role": "user", "content": "12+34="}]
    rows = [{"prompt": prompt, "chosen": [{"role": "assistant", "content": "46"}],
             "rejected": [{"role": "assistant", "content": "36"}]}]
    pairs, _ = build_pairs(rows, "rows", encoder(system_prompt="Add."))
    assert text(pairs[0].prompt_ids) == (
        "<|im_start|>system\nAdd.<|im_end|>\n<|im_start|>user\n12+34=<|im_end|>\n<|im_start|>assistant\n")
    assert text(pairs[0].chosen_ids) == "46<|im_end|>\n"
    # a plain-string prompt goes through the same template when data.chat_template is set
    plain, _ = build_pairs([{"prompt": "12+34=", "chosen": "46", "rejected": "36"}], "rows",
                           encoder(system_prompt="Add.", chat_template=True))
    assert plain[0].prompt_ids == pairs[0].prompt_ids


def test_completions_are_cut_to_max_completion_length_and_pairs_made_identical_are_dropped() -> None:
    rows = [{"prompt": "9+9=", "chosen": "18", "rejected": "17"}, {"prompt": "9+9=", "chosen": "18", "rejected": "19"}]
    pairs, counts = build_pairs(rows, "rows", encoder(max_completion_length=2))
    assert [len(p.chosen_ids) for p in pairs] == [2, 2] and counts.truncated == 4
    cut, counts = build_pairs(rows, "rows", encoder(max_completion_length=1))
    assert (len(cut), counts.identical) == (0, 2)


def test_malformed_chat_messages_name_the_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "a", "chosen": "b", "rejected": "c"},
        {"prompt": [{"role": "user"}], "chosen": "b", "rejected": "c"},
    ]))
    with pytest.raises(DataError, match=r"row 1 field 'prompt'.*role"):
        load_rows(DataConfig(path=str(path)), "train", ("prompt", "chosen", "rejected"))


def test_pointwise_rows_need_a_reward_and_equally_many_reference_rewards() -> None:
    good = {"prompt": "1+1=", "completion": "2", "reward": 1.0, "ref_rewards": [0.0, 1.0]}
    examples, _ = build_pointwise([good], "rows", encoder())
    assert examples[0].ref_rewards == (0.0, 1.0) and examples[0].completion_ids[-1] == EOS
    with pytest.raises(DataError, match=r"row 0 field 'ref_rewards'.*qrpo-prep"):
        build_pointwise([{**good, "ref_rewards": None}], "rows", encoder())
    with pytest.raises(DataError, match=r"row 0 field 'reward' must be a finite number"):
        build_pointwise([{**good, "reward": "high"}], "rows", encoder())
    with pytest.raises(DataError, match="row 1 has 3 reference rewards; earlier rows have 2"):
        build_pointwise([good, {**good, "ref_rewards": [0.0, 0.0, 1.0]}], "rows", encoder())


def test_cache_key_follows_weights_and_tokens() -> None:
    weights = [("w", torch.arange(10.0))]
    base = sequences_key(weights_fingerprint(weights), [[1, 2], [3]])
    assert base == sequences_key(weights_fingerprint([("w", torch.arange(10.0))]), [[1, 2], [3]])
    assert base != sequences_key(weights_fingerprint([("w", torch.arange(10.0) + 1e-3)]), [[1, 2], [3]])
    assert base != sequences_key(weights_fingerprint(weights), [[1], [2, 3]])  # same tokens, other split


def test_cached_values_are_computed_once(tmp_path: Path) -> None:
    calls = []

    def compute() -> torch.Tensor:
        calls.append(1)
        return torch.tensor([-1.5, -2.0])

    first = cached_or_computed(tmp_path, "k", compute)
    second = cached_or_computed(tmp_path, "k", compute)
    assert torch.equal(first, second) and len(calls) == 1
    assert cached_or_computed(None, "k", compute) is not None and len(calls) == 2  # cache off: always computed


def test_interrupted_writing_resumes_without_duplicates(tmp_path: Path) -> None:
    def produce(start: int, end: int) -> list[dict]:
        return [{"i": i} for i in range(start, end)]

    def failing(start: int, end: int) -> list[dict]:
        if start >= 4:
            raise KeyboardInterrupt
        return produce(start, end)

    with pytest.raises(KeyboardInterrupt):
        write_in_chunks(tmp_path, "train", 10, 2, failing, False, "test")
    assert write_in_chunks(tmp_path, "train", 10, 2, produce, False, "test") == 10
    rows = [json.loads(line)["i"] for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert rows == list(range(10))
