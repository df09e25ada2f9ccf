from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from posttrain.config import TinyModelConfig
from posttrain.models import build_byte_tokenizer, build_tiny_model

pytestmark = pytest.mark.unit

TEXTS = ["Hello world", "  two  spaces\tand tab\nnewline", "37+45=82", "ünïcödé → 日本", ""]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_in_memory(text: str) -> None:
    tokenizer = build_byte_tokenizer()
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text.encode())  # one token per byte
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("loader", [AutoTokenizer, PreTrainedTokenizerFast])
def test_round_trip_through_saved_qwen2_folder(tmp_path: Path, loader) -> None:
    model, tokenizer = build_tiny_model(TinyModelConfig())
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = loader.from_pretrained(tmp_path)
    for text in TEXTS:
        assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert reloaded.decode(reloaded(text)["input_ids"]) == text
    assert (reloaded.pad_token, reloaded.eos_token) == ("<|pad|>", "<|eos|>")
    assert reloaded.eos_token_id == tokenizer.eos_token_id
    messages = [{"role": "user", "content": "1+1="}]
    rendered = reloaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\n1+1=<|im_end|>\n<|im_start|>assistant\n"
    assert reloaded.decode(reloaded(rendered)["input_ids"]) == rendered
    assert len(reloaded(rendered)["input_ids"]) == len(tokenizer(rendered)["input_ids"])


def test_tiny_model_reloads_with_identical_weights(tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model(TinyModelConfig(seed=3))
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert model.config.vocab_size == len(tokenizer)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert a.equal(b), name


def test_tiny_model_seed_is_deterministic_and_local() -> None:
    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    a, _ = build_tiny_model(TinyModelConfig(seed=1))
    b, _ = build_tiny_model(TinyModelConfig(seed=1))
    c, _ = build_tiny_model(TinyModelConfig(seed=2))
    torch.manual_seed(123)
    assert torch.rand(1).equal(before)  # building a model leaves the caller's RNG alone
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert wa.equal(wb) and not wa.equal(wc)


def test_head_dim_error_names_both_fields(tmp_path: Path) -> None:
    from posttrain.config import ConfigError, validate_recipe
    from tests.conftest import grpo_recipe

    raw = grpo_recipe(tmp_path, model={"tiny": {"hidden_size": 100, "num_attention_heads": 3}})
    with pytest.raises(ConfigError, match=r"model\.tiny: hidden_size=100 is not divisible by num_attention_heads=3"):
        validate_recipe(raw)
