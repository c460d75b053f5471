"""Shared fixtures: a tiny random GPT-2 with the real tokenizer, and one short fine-tune of it.

Building and training once per session keeps the suite fast on 2 CPU cores.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = ROOT / "assets" / "sample_qa.csv"
# Real public Q&A pairs, small samples kept in the repository (tests/data/*/SOURCE.txt says from where).
PUBMEDQA_CSV = ROOT / "tests" / "data" / "pubmedqa" / "qa.csv"
GSM8K_CSV = ROOT / "tests" / "data" / "gsm8k" / "qa.csv"

# No test may reach the internet; the Hub is only ever the local olah server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Everything the app or CLI would write under its working folder goes to a throw-away place.
os.environ.setdefault("GPT2TUNE_HOME", tempfile.mkdtemp(prefix="gpt2tune-test-home-"))


def auto_device() -> str:
    """The device `auto` trains on here: the accelerator torch sees, else the CPU. (Which precision it
    picks is tested by injecting the measured bf16 speed-up: test_device_choices, test_app.)"""
    import torch

    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def unpacked_rows(tokenizer, questions, answers, max_length: int = 1024, answers_only: bool = True):
    """(rows, PrepReport): what training is fed for these pairs, through `prepare_datasets` unpacked, so
    row i holds the i-th example left (examples with nothing to learn are dropped there)."""
    import pandas as pd

    from gpt2tune.data.prep import prepare_datasets

    frame = pd.DataFrame({"question": list(questions), "answer": list(answers)})
    rows, _, report = prepare_datasets(frame, frame.iloc[0:0], tokenizer, max_length, answers_only, pack=False)
    return rows, report


TRAIN_WORDS = "red green blue".split()
EVAL_WORDS = "seven eleven twelve twenty thirty forty fifty ninety".split()
EVAL_ANSWER_WORDS = 150  # a token each: every held-out example is longer than max_length (128 or less)


def write_eval_loss_rises_csv(path: Path, rows: int = 64, eval_fraction: float = 0.25, seed: int = 42) -> Path:
    """Q&A rows on which the eval loss rises as training goes, by construction, on any CPU and in any
    precision. The rows a run holds out (`split_positions` with this eval_fraction and seed, as training
    splits) answer in EVAL_WORDS only, long enough to be cut before their end-of-text; every training row
    answers in a few TRAIN_WORDS. So the eval loss is taken on tokens no training answer contains (not even
    the end-of-text), and learning the training answers moves probability away from exactly those."""
    import csv

    import numpy as np

    from gpt2tune.data.prep import split_positions

    _, eval_at = split_positions(rows, eval_fraction, seed)
    held_out = set(eval_at.tolist())
    rng = np.random.default_rng(0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        for i in range(rows):
            answer = rng.choice(EVAL_WORDS, EVAL_ANSWER_WORDS) if i in held_out else rng.choice(TRAIN_WORDS, 4)
            writer.writerow([f"What is item {i}?", " ".join(answer)])
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from gpt2tune.model import init_tiny

    return init_tiny(tmp_path_factory.mktemp("tiny") / "tiny-gpt2", seed=0)


def tiny_config(tiny_model_dir: Path, output_dir: Path, **overrides):
    """A config that trains the tiny model quickly but visibly (high LR, short rows)."""
    from gpt2tune.config import TuneConfig

    values = dict(
        csv=str(SAMPLE_CSV),
        base_model=str(tiny_model_dir),
        output_dir=str(output_dir),
        max_steps=12,
        learning_rate=2e-3,
        batch_size=4,
        max_length=128,
        logging_steps=2,
        eval_steps=6,
        save_steps=6,
        warmup_ratio=0.0,
        eval_answer_samples=8,
    )
    values.update(overrides)
    return TuneConfig(**values)


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, tmp_path_factory):
    """One fine-tune shared by tests that only need *a* trained output folder."""
    from gpt2tune.training.train import train

    events = []
    config = tiny_config(tiny_model_dir, tmp_path_factory.mktemp("run") / "out")
    result = train(config, on_event=events.append)
    return result, events, config
