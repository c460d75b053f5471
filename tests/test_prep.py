"""Template, labels and split: what the model is trained on."""

import pandas as pd

from gpt2tune.model import load_tokenizer
from gpt2tune.paths import TOKENIZER_DIR
from gpt2tune.data.prep import IGNORE_INDEX, split_frame, tokenize_pairs
from gpt2tune.data.prompt import format_prompt

TOKENIZER = load_tokenizer(str(TOKENIZER_DIR))


def test_answers_only_masks_the_prompt_but_keeps_eos():
    out = tokenize_pairs(["What is 2+2?"], ["Four."], TOKENIZER, max_length=64, answers_only=True)
    ids, labels = out["input_ids"][0], out["labels"][0]
    n_prompt = len(TOKENIZER(format_prompt("What is 2+2?"))["input_ids"])
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == labels[-1] == TOKENIZER.eos_token_id  # the model learns to stop
    assert TOKENIZER.decode(ids) == "Question: What is 2+2?\nAnswer: Four.<|endoftext|>"


def test_full_sequence_labels_when_not_answers_only():
    out = tokenize_pairs(["Q?"], ["A."], TOKENIZER, max_length=64, answers_only=False)
    assert out["labels"][0] == out["input_ids"][0]


def test_long_examples_are_truncated_and_flagged():
    out = tokenize_pairs(["Q?"], ["word " * 500], TOKENIZER, max_length=32, answers_only=True)
    assert len(out["input_ids"][0]) == 32 and out["truncated"] == [True]


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
