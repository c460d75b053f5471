"""Packing changes the speed, never the maths: packed rows give the loss each example gives alone.

Also: rows respect max_length, every example lands exactly once, eager and SDPA attention agree,
and prepared data is cached on disk by content.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SAMPLE_CSV, tiny_config
from gpt2tune.paths import TOKENIZER_DIR
from gpt2tune.data.prep import IGNORE_INDEX, PackedCollator, pack_rows, prepare_datasets, split_frame


@pytest.fixture(scope="module")
def frame():
    from gpt2tune.data.load import load_qa_data

    return load_qa_data(SAMPLE_CSV).frame


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2tune.model import load_tokenizer

    return load_tokenizer(str(TOKENIZER_DIR))


def _model(tokenizer, attn="sdpa"):
    """A small GPT-2 initialised with large weights: with GPT-2's usual 0.02, attention is nearly uniform
    and a leak between packed examples would move the loss by only ~1e-5; at 0.2 it moves it by ~3e-3."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=64, n_head=2, initializer_range=0.2)
    model = GPT2LMHeadModel(config).eval()
    model.set_attn_implementation(attn)  # same weights, other attention kernel
    return model


def _summed_loss(model, batch) -> float:
    """Sum of per-token cross-entropies (not a mean, so row layout cannot reweight anything)."""
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    )
    return per_token.double().sum().item()


def _examples(rows) -> list[tuple]:
    """Each example of a dataset of rows as (input_ids, labels after its first token)."""
    out = []
    for row in rows:
        start = 0
        for n in row["seq_lengths"]:
            out.append((tuple(row["input_ids"][start:start + n]), tuple(row["labels"][start + 1:start + n])))
            start += n
    return out


@pytest.mark.parametrize("answers_only", [True, False])
def test_packed_loss_equals_unpacked_loss(tokenizer, frame, answers_only):
    small = frame.head(16)
    packed, _, _ = prepare_datasets(small, small.head(0), tokenizer, 160, answers_only, pack=True)
    alone, _, _ = prepare_datasets(small, small.head(0), tokenizer, 160, answers_only, pack=False)
    assert len(packed) < len(alone) == 16  # packing did put several examples in a row
    model = _model(tokenizer)
    collate = PackedCollator(tokenizer.pad_token_id)
    # Packed rows, batched with padding, against every example in a batch of its own without padding.
    packed_loss = sum(_summed_loss(model, collate(list(packed.select(range(i, min(i + 3, len(packed)))))))
                      for i in range(0, len(packed), 3))
    alone_loss = 0.0
    for row in alone:
        ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
        alone_loss += _summed_loss(model, {"input_ids": ids, "labels": labels})
    assert packed_loss == pytest.approx(alone_loss, rel=1e-6)


def test_eager_float_mask_matches_sdpa_bool_mask(tokenizer, frame):
    rows, _, _ = prepare_datasets(frame.head(30), frame.head(0), tokenizer, 128, True, pack=True)
    batch = list(rows.select(range(4)))
    sdpa = _summed_loss(_model(tokenizer, "sdpa"), PackedCollator(tokenizer.pad_token_id)(batch))
    eager_batch = PackedCollator(tokenizer.pad_token_id, float_mask_dtype=torch.float32)(batch)
    assert eager_batch["attention_mask"].dtype == torch.float32
    eager = _summed_loss(_model(tokenizer, "eager"), eager_batch)
    assert eager == pytest.approx(sdpa, rel=1e-6)


def test_rows_fit_max_length_and_hold_every_example_once(tokenizer, frame):
    short = [(f"What is {i} plus {i}?", f"{2 * i}.") for i in range(40)]
    long = [("Why? " * 30, "Because. " * 30)] * 3
    mixed = pd.concat([frame.head(60), pd.DataFrame(short + long, columns=["question", "answer"])])
    train, held_out = split_frame(mixed, 0.2, 0)
    packed, packed_eval, report = prepare_datasets(train, held_out, tokenizer, 100, True, pack=True)
    alone, alone_eval, _ = prepare_datasets(train, held_out, tokenizer, 100, True, pack=False)
    assert report.truncated > 0  # the long examples are cut: truncation is exercised too
    for rows in (packed, packed_eval):
        assert max(len(ids) for ids in rows["input_ids"]) <= 100
        assert all(sum(r["seq_lengths"]) == len(r["input_ids"]) == len(r["labels"]) for r in rows)
    assert sorted(_examples(packed)) == sorted(_examples(alone))
    assert sorted(_examples(packed_eval)) == sorted(_examples(alone_eval))
    assert len(_examples(packed)) == report.train_examples == len(train)
    assert report.train_rows == len(packed) < len(alone)


def test_pack_rows_is_a_partition_into_nearly_full_rows():
    lengths = np.random.default_rng(0).integers(5, 120, size=5_000)
    row_of = pack_rows(lengths, 128)  # each example's row: every example lands in exactly one
    assert row_of.shape == lengths.shape and row_of.min() == 0
    n_rows = int(row_of.max()) + 1
    assert np.unique(row_of).tolist() == list(range(n_rows))  # rows numbered without gaps
    assert max(sum(lengths[row_of == row]) for row in range(n_rows)) <= 128
    assert n_rows <= 1.05 * np.ceil(lengths.sum() / 128)  # best-fit decreasing is near the bound
    with pytest.raises(ValueError, match="cannot fit"):
        pack_rows([10, 200], 128)


def test_collator_masks_padding_and_restarts_positions(tokenizer):
    rows = [
        {"input_ids": [1, 2, 3, 4, 5], "labels": [IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5], "seq_lengths": [3, 2]},
        {"input_ids": [6, 7], "labels": [IGNORE_INDEX, 7], "seq_lengths": [2]},
    ]
    batch = PackedCollator(tokenizer.pad_token_id)(rows)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["position_ids"][0, :5].tolist() == [0, 1, 2, 0, 1]
    assert batch["labels"][1, 2:].eq(IGNORE_INDEX).all()
    mask = batch["attention_mask"][0, 0]
    assert mask[4, 3] and not mask[3, 2] and not mask[2, 3]  # within an example only, causal
    assert batch["num_real_tokens"].item() == 7


def test_second_preparation_hits_the_cache(tokenizer, frame, tmp_path):
    train, held_out = split_frame(frame, 0.1, 0)
    first = prepare_datasets(train, held_out, tokenizer, 128, True, True, cache_dir=tmp_path)
    second = prepare_datasets(train, held_out, tokenizer, 128, True, True, cache_dir=tmp_path)
    assert not first[2].from_cache and second[2].from_cache
    assert second[0]["input_ids"] == first[0]["input_ids"] and second[1]["labels"] == first[1]["labels"]
    assert second[2].train_tokens == first[2].train_tokens
    # Anything that changes the rows changes the key.
    assert not prepare_datasets(train, held_out, tokenizer, 96, True, True, cache_dir=tmp_path)[2].from_cache
    assert not prepare_datasets(train, held_out, tokenizer, 128, False, True, cache_dir=tmp_path)[2].from_cache
    edited = train.copy()
    edited.loc[0, "answer"] += " (edited)"
    assert not prepare_datasets(edited, held_out, tokenizer, 128, True, True, cache_dir=tmp_path)[2].from_cache
    empty_eval = prepare_datasets(train, pd.DataFrame(columns=["question", "answer"]), tokenizer, 128, True, True,
                                  cache_dir=tmp_path)
    assert empty_eval[1] is None


def test_an_unwritable_cache_costs_the_cache_not_the_run(tokenizer, frame, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    rows, _, report = prepare_datasets(frame.head(20), frame.head(0), tokenizer, 128, True, True, cache_dir=blocker)
    assert len(rows) == report.train_rows and report.train_examples == 20 and not report.from_cache
    assert any("not cached" in warning for warning in report.warnings)


@pytest.mark.slow
def test_training_twice_on_the_same_csv_reuses_the_tokenized_data(tiny_model_dir, tmp_path):
    from gpt2tune.training.train import train

    statuses = []
    for run in ("a", "b"):
        events = []
        config = tiny_config(tiny_model_dir, tmp_path / run, max_steps=1, eval_fraction=0, save_steps=0)
        train(config, on_event=events.append)
        statuses.append(" ".join(e.message for e in events if e.kind == "status"))
    assert "reused from the cache" not in statuses[0]
    assert "reused from the cache" in statuses[1]
    assert any((tmp_path / ".prep-cache").iterdir())
