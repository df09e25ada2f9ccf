"""Our DPO (sigmoid) and IPO losses equal TRL's DPOTrainer on the same models and tokens."""

import math

import pytest
import torch

from posttrain.algos import dpo_loss, ipo_loss
from posttrain.config.schema import TinyModelConfig
from posttrain.models.tiny import build_tiny_model
from posttrain.trainers.logprobs import completion_logp_sums

pytestmark = pytest.mark.integration

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

ROWS = [
    {"prompt": "12+34=", "chosen": "46", "rejected": "36"},
    {"prompt": "57+8=", "chosen": "65", "rejected": "55"},
    {"prompt": "9+9=", "chosen": "18", "rejected": "1"},
    {"prompt": "70-25=", "chosen": "45", "rejected": "55"},
]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """TRL's trainer sets accelerate's process-wide state (mixed precision among it); later trainers in
    this process would inherit it."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(True)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_losses_match_trl_dpo_trainer(loss_type: str, tmp_path) -> None:
    policy, tokenizer = build_tiny_model(TinyModelConfig(seed=0))
    reference, _ = build_tiny_model(TinyModelConfig(seed=1))  # a different reference, so losses differ per pair
    beta = 0.5
    args = trl.DPOConfig(output_dir=str(tmp_path), beta=beta, loss_type=[loss_type], report_to="none", use_cpu=True,
                         per_device_train_batch_size=len(ROWS), precompute_ref_log_probs=False, bf16=False)
    trainer = trl.DPOTrainer(model=policy, ref_model=reference, args=args,
                             train_dataset=datasets.Dataset.from_list(ROWS), processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        theirs = trainer._compute_loss(trainer.model, batch, return_outputs=False).item()

    # identical log-probs: TRL's own per-token log-probs of its batch, summed over the completion
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)

    def sums(model: torch.nn.Module) -> torch.Tensor:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                    use_cache=False, fused_lm_head=True)
        return out.log_probs.sum(-1)

    n = len(ROWS)
    with torch.no_grad():
        logp, ref_logp = sums(trainer.model), sums(reference)
    lengths = batch["completion_mask"].sum(-1).float()
    if loss_type == "sigmoid":
        ours = dpo_loss(logp[:n], logp[n:], ref_logp[:n], ref_logp[n:], beta)
    else:
        ours = ipo_loss(logp[:n], logp[n:], ref_logp[:n], ref_logp[n:], beta, lengths[:n], lengths[n:])
    assert abs(theirs - math.log(2)) > 1e-3  # not the trivial value at initialisation
    assert ours.losses.mean().item() == pytest.approx(theirs, abs=1e-6)

    # and our own batch layout (left-padded prompt, right-padded completion) reads the same log-probs,
    # up to float32 summation order
    ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    prompts = [row[(a == 1) & (c == 0)].tolist() for row, a, c in zip(ids, attention, completion)]
    completions = [row[c == 1].tolist() for row, c in zip(ids, completion)]
    with torch.no_grad():
        ours_layout, _ = completion_logp_sums(trainer.model, prompts, completions, tokenizer.pad_token_id,
                                              torch.device("cpu"))
    torch.testing.assert_close(ours_layout, logp, atol=1e-5, rtol=0)
