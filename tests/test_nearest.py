"""The nearest training example beside each answer: the index itself, the run's copy of it, the CLI's
`generate --show-nearest`, the card's sample answers and the app's Generate tab (through gradio_client)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from app_server import app_url  # noqa: F401  (a fixture)
from conftest import ROOT, SAMPLE_CSV
from gradio_client import Client

from gpt2tune.data.nearest import INDEX_FILE, NearestIndex
from gpt2tune.data.prep import split_positions

SAMPLE = pd.read_csv(SAMPLE_CSV)  # 200 rows, no two questions alike even once normalised
UNRELATED = "Which spices go into a Moroccan tagine with apricots?"


def training_rows(seed=42, eval_fraction=0.1) -> pd.DataFrame:
    """The rows a run on the sample trains on: the split's definition, applied to the file as read by pandas."""
    train_at, _ = split_positions(len(SAMPLE), eval_fraction, seed)
    return SAMPLE.iloc[train_at].reset_index(drop=True)


def test_a_training_question_finds_its_own_answer():
    index = NearestIndex.build(SAMPLE.question, SAMPLE.answer)
    for row in (0, 57, 199):
        question, answer = SAMPLE.question[row], SAMPLE.answer[row]
        for asked in (question, question.upper(), f"  {question.rstrip('?')}  !!"):  # the same, normalised
            match = index.nearest(asked)[0]
            assert (match.question, match.answer, match.row) == (question, answer, row)
            assert match.score >= 0.99


def test_scores_rank_and_stay_between_0_and_1():
    index = NearestIndex.build(SAMPLE.question, SAMPLE.answer)
    own = index.nearest(SAMPLE.question[3])[0].score
    unrelated = index.nearest(UNRELATED)
    assert unrelated and unrelated[0].score < 0.5 * own
    matches = index.nearest("How do I resume an interrupted training run?", k=200)
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert "resum" in matches[0].question.lower()  # the question about resuming, not any other
    assert index.nearest("?!") == []  # nothing to compare: no claim


def test_saved_index_answers_as_built(tmp_path):
    built = NearestIndex.build(SAMPLE.question, SAMPLE.answer, source={"file": "sample_qa.csv"})
    loaded = NearestIndex.load(built.save(tmp_path / INDEX_FILE))
    with np.load(tmp_path / INDEX_FILE, allow_pickle=False) as data:  # plain arrays: nothing to unpickle
        assert all(data[name].dtype != object for name in data.files)
    assert loaded.meta["source"] == {"file": "sample_qa.csv"} and len(loaded) == 200
    for question in (SAMPLE.question[10], UNRELATED, "Wie trainiere ich schneller?"):
        assert loaded.nearest(question, k=3) == built.nearest(question, k=3)


def _generate(model, question, *flags):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gpt2tune", "generate", "--model", str(model), "--question",
                           question, "--max-new-tokens", "3", "--show-nearest", *flags],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_a_run_keeps_its_index_and_the_cli_shows_the_nearest_example(trained_run, tmp_path):
    result, _, config = trained_run
    rows = training_rows(config.seed, config.eval_fraction)
    assert len(NearestIndex.load(result.output_dir / INDEX_FILE)) == len(rows)
    question, answer = rows.question[0], rows.answer[0]
    done = _generate(result.output_dir, question)
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[-1]
    assert line == f"nearest training example: similarity 1.00 | Q: {question} | A: {' '.join(answer.split())}"
    unrelated = _generate(result.output_dir, UNRELATED).stdout.splitlines()[-1]
    assert float(unrelated.split("similarity ")[1].split(" |")[0]) < 0.5
    # a Hub id or a bare model has no training split: said so, the answer still printed
    bare = _generate(config.base_model, question)
    assert bare.returncode == 0 and "nearest training example: none: tiny-gpt2 is not a run folder" in bare.stdout


@pytest.mark.slow
def test_an_older_run_gets_its_index_built_on_first_use(trained_run, tmp_path):
    result, _, config = trained_run
    older = shutil.copytree(result.output_dir, tmp_path / "older", ignore=shutil.ignore_patterns("checkpoints"))
    (older / INDEX_FILE).unlink()
    question = training_rows(config.seed, config.eval_fraction).question[5]
    done = _generate(older, question)
    assert done.returncode == 0, done.stderr
    assert f"similarity 1.00 | Q: {question} |" in done.stdout
    assert (older / INDEX_FILE).is_file()  # built once, kept for next time


@pytest.mark.slow
def test_the_card_shows_the_nearest_example_of_each_sample_answer(trained_run):
    result, _, _ = trained_run
    card = (result.output_dir / "README.md").read_text()
    assert "| question | reference | generated | nearest training example (similarity) |" in card
    import json

    samples = json.loads((result.output_dir / "samples.json").read_text())
    rows = training_rows()
    for sample in samples:
        near = sample["nearest"]
        assert 0 <= near["score"] <= 1
        assert near["question"] in set(rows.question)  # from the training split, never the eval split
        assert near["answer"] == rows.answer[rows.question == near["question"]].iloc[0]


@pytest.mark.slow
def test_generate_tab_shows_the_nearest_example(app_url, trained_run, monkeypatch):  # noqa: F811
    from gpt2tune.runs.store import run_dir

    result, _, config = trained_run
    shutil.copytree(result.output_dir, run_dir("near"), ignore=shutil.ignore_patterns("checkpoints"))
    client = Client(app_url, verbose=False)
    rows = training_rows(config.seed, config.eval_fraction)
    text = client.predict(rows.question[1], "Trained run", "near", "", api_name="/nearest")
    assert text == f"similarity 1.00\nQ: {rows.question[1]}\nA: {rows.answer[1]}"
    score = float(client.predict(UNRELATED, "Trained run", "near", "", api_name="/nearest").splitlines()[0].split()[1])
    assert score < 0.5
    # an owner-only app shows the owner's training rows to the owner only
    monkeypatch.setenv("GPT2TUNE_OWNER_ONLY_TRAINING", "1")
    hidden = client.predict(rows.question[1], "Trained run", "near", "", api_name="/nearest")
    assert hidden == ("none: showing training examples on this app is reserved for its owner "
                      "(GPT2TUNE_OWNER_ONLY_TRAINING=1): sign in as the owner")
