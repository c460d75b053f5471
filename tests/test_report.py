"""The dataset report: lengths match what training feeds, duplicates and split leakage are found."""

import pandas as pd
import pytest

from conftest import unpacked_rows
from gpt2tune.data.length import choose_max_length
from gpt2tune.model import load_tokenizer
from gpt2tune.paths import TOKENIZER_DIR
from gpt2tune.data.prep import split_frame
from gpt2tune.data.report import dataset_report


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(TOKENIZER_DIR))


def _frame():
    rows = [(f"What is {i} plus {i}?", f"It is {2 * i}.") for i in range(40)]
    rows += [
        ("What is 3 plus 3?", "It is 6."),  # exact duplicate of row 3
        ("what is 4 PLUS 4", "it is 8"),  # duplicate of row 4 once case/punctuation are ignored
        ("What is 5 plus 5?", "Ten."),  # repeated question, different answer
        ("Why? " * 200, "Because it is long."),  # far over max_length
    ]
    return pd.DataFrame(rows, columns=["question", "answer"])


def test_lengths_are_those_training_sees(tokenizer):
    frame = _frame()
    report = dataset_report(frame, tokenizer, max_length=64, eval_fraction=0.25, seed=1)
    trained, _ = unpacked_rows(tokenizer, frame["question"], frame["answer"], max_length=10_000)
    assert report.token_lengths == [len(ids) for ids in trained["input_ids"]]
    assert [q + a + 1 for q, a in zip(report.question_lengths, report.answer_lengths)] == report.token_lengths
    assert report.over_max_length == 1
    assert report.suggested_max_length % 64 == 0
    assert report.rows == len(frame)


def test_duplicates_exact_and_normalised(tokenizer):
    report = dataset_report(_frame(), tokenizer, max_length=64, eval_fraction=0.25, seed=1)
    assert report.exact_duplicates == 1
    assert report.normalised_duplicates == 2
    assert report.duplicate_questions == 3
    assert "What is 3 plus 3?" in report.duplicate_examples


def test_leakage_uses_the_training_split(tokenizer):
    frame = _frame()
    report = dataset_report(frame, tokenizer, max_length=64, eval_fraction=0.25, seed=1)
    train, held_out = split_frame(frame, 0.25, 1)
    key = lambda q: "".join(c for c in q.lower() if c.isalnum() or c == " ").split()  # noqa: E731
    train_keys = {tuple(key(q)) for q in train["question"]}
    expected = [q for q in held_out["question"] if tuple(key(q)) in train_keys]
    assert report.train_rows == len(train) and report.eval_rows == len(held_out)
    assert report.leakage_count == len(expected) > 0
    assert report.leakage_examples == expected[:3]
    text = report.summary()
    assert f"{len(expected)} of {len(held_out)} eval rows" in text
    assert "fits 43 of 44 examples whole (97.7%)" in text and "1 examples are longer than 64 tokens" in text
    assert set(report.to_dict()) >= {"token_lengths", "leakage_count", "suggested_max_length"}


def test_no_leakage_without_eval_split(tokenizer):
    report = dataset_report(_frame().head(10), tokenizer, max_length=64, eval_fraction=0.0, seed=1)
    assert report.eval_rows == 0 and report.leakage_count == 0
    assert "no eval split" in report.summary()


def test_suggested_max_length_rounds_up_and_caps():
    assert choose_max_length([10] * 100).max_length == 64  # multiples of 64
    assert choose_max_length([65] * 100).max_length == 128
    assert choose_max_length(list(range(1, 101))).max_length == 128  # 99 of 100 fit 99 tokens: next multiple 128
    assert choose_max_length([5000] * 10).max_length == 1024


def test_empty_frame_is_refused(tokenizer):
    with pytest.raises(ValueError, match="no rows"):
        dataset_report(pd.DataFrame(columns=["question", "answer"]), tokenizer, 64, 0.1, 0)
