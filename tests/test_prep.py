"""Template, labels and split: what the model is trained on."""

import os

import numpy as np
import pandas as pd
import pytest

from conftest import PUBMEDQA_CSV, unpacked_rows
from gpt2tune.model import load_tokenizer
from gpt2tune.paths import TOKENIZER_DIR
from gpt2tune.data.prep import IGNORE_INDEX, split_frame
from gpt2tune.data.prompt import format_answer, format_prompt

TOKENIZER = load_tokenizer(str(TOKENIZER_DIR))


def test_answers_only_masks_the_prompt_but_keeps_eos():
    rows, _ = unpacked_rows(TOKENIZER, ["What is 2+2?"], ["Four."], max_length=64, answers_only=True)
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    n_prompt = len(TOKENIZER(format_prompt("What is 2+2?"))["input_ids"])
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == labels[-1] == TOKENIZER.eos_token_id  # the model learns to stop
    assert TOKENIZER.decode(ids) == "Question: What is 2+2?\nAnswer: Four.<|endoftext|>"


def test_full_sequence_labels_when_not_answers_only():
    rows, _ = unpacked_rows(TOKENIZER, ["Q?"], ["A."], max_length=64, answers_only=False)
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    # every token is a target except the first, which nothing before it predicts
    assert labels[0] == IGNORE_INDEX and labels[1:] == ids[1:]


def test_long_examples_are_truncated_and_flagged():
    rows, report = unpacked_rows(TOKENIZER, ["Q?", "R?"], ["word " * 500, "Short."], max_length=32)
    assert [len(ids) for ids in rows["input_ids"]] == [32, len(TOKENIZER("Question: R?\nAnswer: Short.")["input_ids"]) + 1]
    assert report.truncated == 1 and rows[0]["input_ids"][-1] != TOKENIZER.eos_token_id


def test_split_is_seeded_disjoint_and_complete():
    frame = pd.DataFrame({"question": [f"q{i}" for i in range(50)], "answer": ["a"] * 50})
    train, evals = split_frame(frame, 0.2, seed=1)
    again_train, again_eval = split_frame(frame, 0.2, seed=1)
    assert list(evals["question"]) == list(again_eval["question"])
    assert len(evals) == 10 and len(train) == 40
    assert set(train["question"]) | set(evals["question"]) == set(frame["question"])
    assert not set(train["question"]) & set(evals["question"])


def test_tiny_datasets_still_split_or_train_without_eval():
    one = pd.DataFrame({"question": ["q"], "answer": ["a"]})
    train, evals = split_frame(one, 0.1, seed=0)
    assert len(train) == 1 and len(evals) == 0
    two = pd.DataFrame({"question": ["q1", "q2"], "answer": ["a", "b"]})
    train, evals = split_frame(two, 0.1, seed=0)
    assert len(train) == 1 and len(evals) == 1


def test_rows_built_from_flat_token_ids_match_row_by_row_lists():
    """Every row built by array indexing equals (prompt + answer + EOS)[:max_length] written out per row with
    the tokenizer's own call, for real rows: cut in the answer and whole; an example whose question fills
    max_length (nothing left to learn) is left out."""
    from gpt2tune.data.prep import encode_pairs, prepare_datasets
    from gpt2tune.data.prompt import format_answer

    frame = pd.read_csv(PUBMEDQA_CSV).head(60)
    frame.loc[3, "question"] = "Is <|endoftext|> plain text here?"  # special-token text stays text
    questions, answers = list(frame["question"]), list(frame["answer"])
    eos = TOKENIZER.eos_token_id
    encoded = encode_pairs(questions, answers, TOKENIZER)
    seen = set()  # which cases the real rows exercised
    for max_length, answers_only in ((24, True), (96, True), (1024, False)):
        rows, _, report = prepare_datasets(frame, frame.head(0), TOKENIZER, max_length, answers_only, pack=False,
                                           encoded=lambda: ((encoded, np.arange(len(frame))), None))
        expected, truncated = [], 0
        for q, a in zip(questions, answers):
            prompt = TOKENIZER(format_prompt(q), add_special_tokens=False, split_special_tokens=True)["input_ids"]
            reply = TOKENIZER(format_answer(a), add_special_tokens=False, split_special_tokens=True)["input_ids"]
            whole = prompt + reply + [eos]
            if answers_only and len(prompt) >= max_length:
                seen.add("dropped")
                continue  # no answer token left inside max_length
            seen.add("cut" if len(whole) > max_length else "whole")
            masked = [IGNORE_INDEX] * len(prompt) + reply + [eos] if answers_only else whole
            expected.append((whole[:max_length], [IGNORE_INDEX] + masked[1:max_length]))
            truncated += len(whole) > max_length
        assert [(row["input_ids"], row["labels"]) for row in rows] == expected
        assert (report.train_examples, report.truncated) == (len(expected), truncated)
        assert all(row["seq_lengths"] == [len(row["input_ids"])] for row in rows)
    assert seen == {"dropped", "cut", "whole"}
    assert eos not in encoded.prompt_ids[:encoded.prompt_lengths[:4].sum()].tolist()


def test_token_ids_of_a_frame_are_cached_and_read_back_without_the_tokenizer(tmp_path, monkeypatch):
    from gpt2tune.data import prep

    frame = pd.DataFrame({"question": [f"What is {i} + {i}?" for i in range(50)],
                          "answer": [f"It is {2 * i}." for i in range(50)]})
    first = prep.encode_frame(frame, TOKENIZER, tmp_path)

    def no_tokenizer(*args, **kwargs):
        raise AssertionError("the tokenizer ran on a cache hit")

    monkeypatch.setattr(prep, "encode_text", no_tokenizer)
    again = prep.encode_frame(frame, TOKENIZER, tmp_path)
    for name in prep.ENCODED_ARRAYS:
        assert getattr(again, name).tolist() == getattr(first, name).tolist()
    assert again.prompt_lengths.sum() == len(again.prompt_ids) > 0
    changed = frame.assign(answer=frame["answer"].str.replace("It is", "That is"))
    with pytest.raises(AssertionError, match="tokenizer ran"):  # other text: another key, tokenized again
        prep.encode_frame(changed, TOKENIZER, tmp_path)


def test_large_batches_use_the_tokenizer_threads_unless_the_user_said_no(monkeypatch):
    from gpt2tune.data import prep

    seen = []
    monkeypatch.setattr(prep, "_parallel_set_here", False)
    monkeypatch.delenv(prep.PARALLEL_ENV, raising=False)
    with prep._parallel_tokenizer(prep.PARALLEL_MIN_TEXTS):
        seen.append(os.environ.get(prep.PARALLEL_ENV))
    seen.append(os.environ.get(prep.PARALLEL_ENV))  # left "false": a later fork neither warns nor deadlocks
    with prep._parallel_tokenizer(prep.PARALLEL_MIN_TEXTS):
        seen.append(os.environ.get(prep.PARALLEL_ENV))  # "false" was ours: the next large batch is parallel
    with prep._parallel_tokenizer(10):
        seen.append(os.environ.get(prep.PARALLEL_ENV))  # a small batch is not worth the threads
    assert seen == ["true", "false", "true", "false"]
    monkeypatch.setattr(prep, "_parallel_set_here", False)
    monkeypatch.setenv(prep.PARALLEL_ENV, "false")  # the user's own choice
    with prep._parallel_tokenizer(prep.PARALLEL_MIN_TEXTS):
        assert os.environ[prep.PARALLEL_ENV] == "false"


def test_an_example_whose_question_fills_max_length_is_dropped_and_one_token_short_is_kept():
    """Counted by hand: the loss needs a labelled token after the first position. A question filling all
    max_length tokens leaves none; one token shorter leaves the first answer token as its one target."""
    from gpt2tune.data.prep import IGNORE_INDEX, rows_for

    long_question = "word " * 40
    prompt_tokens = len(TOKENIZER(format_prompt(long_question), split_special_tokens=True)["input_ids"])
    frame = pd.DataFrame({"question": [long_question, long_question, "Short?", "Short?"],
                          "answer": ["An answer.", "An answer.", "Fine.", "Fine."]})
    short_targets = len(TOKENIZER(format_answer("Fine."))["input_ids"]) + 1  # the answer and EOS
    for max_length, dropped, targets in ((prompt_tokens, 2, [short_targets] * 2),
                                         (prompt_tokens + 1, 0, [1, 1] + [short_targets] * 2)):
        counts, rows = rows_for(frame, TOKENIZER, max_length, answers_only=True, pack=False)
        assert (counts.examples, counts.dropped_no_answer_left) == (4 - dropped, dropped)
        assert sorted(sum(label != IGNORE_INDEX for label in row) for row in rows["labels"]) == sorted(targets)
        assert counts.tokens == sum(map(len, rows["input_ids"]))
    # without the answers-only mask every token after the first is a target
    counts, _ = rows_for(frame, TOKENIZER, prompt_tokens, answers_only=False, pack=False)
    assert counts.dropped_no_answer_left == 0 and counts.truncated == 2


def test_token_ids_beyond_the_reserved_size_are_kept_whole():
    """The ids are written into an array reserved at about a token per character; emoji take up to four
    byte tokens each, so these overflow it and the array grows. Compared with the tokenizer text by text."""
    from gpt2tune.data import prep

    questions = ["Why? " + "🙂🎉" * (i + 1) for i in range(30)]
    answers = ["🚀" * (3 * i + 1) for i in range(30)]
    encoded = prep.encode_pairs(questions, answers, TOKENIZER)
    assert encoded.prompt_ids.dtype == np.uint16  # GPT-2's 50,257 ids fit in two bytes
    assert len(encoded.reply_ids) > sum(map(len, answers)) + 4 * len(answers)  # more than was reserved
    for i in (0, 17, 29):
        prompt = encoded.prompt_ids[encoded.prompt_starts[i]:][:encoded.prompt_lengths[i]].tolist()
        reply = encoded.reply_ids[encoded.reply_starts[i]:][:encoded.reply_lengths[i]].tolist()
        assert prompt == prep.encode_text(TOKENIZER, [format_prompt(questions[i])])[0]
        assert reply == prep.encode_text(TOKENIZER, [format_answer(answers[i])])[0]


def test_rows_are_the_same_whatever_the_batch_they_are_built_in(monkeypatch):
    """Rows are built a record batch at a time straight from the token ids; tiny batches (a few rows,
    a few hundred tokens) must give the very rows one batch gives."""
    from gpt2tune.data import prep
    from gpt2tune.data.load import load_qa_data
    from conftest import SAMPLE_CSV

    frame = load_qa_data(SAMPLE_CSV).frame
    _, whole = prep.rows_for(frame, TOKENIZER, 128, answers_only=True, pack=True)
    monkeypatch.setattr(prep, "WRITE_CHUNK_TOKENS", 300)
    monkeypatch.setattr(prep, "WRITE_CHUNK_ROWS", 3)
    counts, pieces = prep.rows_for(frame, TOKENIZER, 128, answers_only=True, pack=True)
    assert whole.to_dict() == pieces.to_dict() and len(pieces) > 3
    assert counts.tokens == sum(map(len, pieces["input_ids"]))
