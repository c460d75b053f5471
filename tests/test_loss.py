"""The loss on labelled positions only equals the model's full loss, value and gradients, on packed batches."""

from __future__ import annotations

import pytest
import torch

from conftest import SAMPLE_CSV


@pytest.fixture(scope="module")
def packed(tiny_model_dir):
    """The tiny model (float64, so the comparison measures the method, not rounding) and two packed batches."""
    from transformers import AutoModelForCausalLM

    from gpt2tune.data.load import load_qa_data
    from gpt2tune.data.prep import PackedCollator, prepare_datasets, split_frame
    from gpt2tune.model import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    train_frame, eval_frame = split_frame(load_qa_data(SAMPLE_CSV).frame, 0.1, 42)
    train_set = prepare_datasets(train_frame, eval_frame, tokenizer, 128, True, True)[0]
    collate = PackedCollator(tokenizer.pad_token_id)
    batches = [collate([train_set[i] for i in range(start, start + 4)]) for start in (0, 4)]
    for batch in batches:
        batch.pop("num_real_tokens")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64).eval()  # eval: no dropout
    return model, batches


def _grads(model) -> dict:
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return grads


def _labelled_count(batches) -> int:
    # counted independently: labels that some earlier position predicts (not the first of a row)
    return sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)


@pytest.mark.slow
def test_loss_and_gradients_equal_the_full_computation(packed):
    from gpt2tune.loss import labelled_loss

    model, batches = packed
    assert 0 < _labelled_count(batches[:1]) < 0.8 * batches[0]["labels"].numel()  # questions and padding are skipped
    full = model(**batches[0]).loss  # the model's mean over labelled positions
    full.backward()
    expected = _grads(model)
    ours = labelled_loss(model, batches[0])
    ours.backward()
    got = _grads(model)
    assert ours.item() == pytest.approx(full.item(), abs=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.slow
def test_gradient_accumulation_normalises_by_the_items_of_all_batches(packed):
    """Two accumulated batches divided by their joint label count, as the Trainer passes it."""
    from gpt2tune.loss import labelled_loss

    model, batches = packed
    items = torch.tensor(_labelled_count(batches))
    full = [model(**b, num_items_in_batch=items).loss for b in batches]
    sum(full).backward()
    expected = _grads(model)
    ours = [labelled_loss(model, b, items, chunk_rows=128) for b in batches]  # several chunks each
    sum(ours).backward()
    got = _grads(model)
    for mine, theirs in zip(ours, full):
        assert mine.item() == pytest.approx(theirs.item(), abs=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=1e-5, msg=name)


def test_a_batch_without_labels_gives_zero_not_nan(packed):
    from gpt2tune.loss import labelled_loss

    model, batches = packed
    batch = {**batches[0], "labels": torch.full_like(batches[0]["labels"], -100)}
    loss = labelled_loss(model, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    assert loss.item() == 0.0


@pytest.mark.slow
def test_the_trainer_loss_matches_the_stock_trainer(packed, tmp_path):
    """PackedTrainer.compute_loss (training and eval) against transformers' own Trainer.compute_loss."""
    from transformers import Trainer, TrainingArguments

    from gpt2tune.training.train import PackedTrainer

    model, batches = packed
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", gradient_accumulation_steps=2)
    ours, stock = PackedTrainer(model=model, args=args), Trainer(model=model, args=args)
    items = torch.tensor(_labelled_count(batches))
    for batch in batches:
        expected = Trainer.compute_loss(stock, model, dict(batch), num_items_in_batch=items)
        got = ours.compute_loss(model, {**batch, "num_real_tokens": torch.tensor(1)}, num_items_in_batch=items)
        assert got.item() == pytest.approx(expected.item(), abs=1e-5)
    # eval: the Trainer asks for outputs too and keeps only the loss
    loss, outputs = ours.compute_loss(model, dict(batches[0]), return_outputs=True)
    assert loss.item() == pytest.approx(model(**batches[0]).loss.item(), abs=1e-5)
    assert set(outputs) == {"loss"}
