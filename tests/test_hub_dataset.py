"""Training data from a Hub dataset: served over real HTTP by the local olah mirror, read with
`datasets.load_dataset`, mapped and reported like a file; offline it fails fast with one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import GSM8K_CSV, ROOT
from hub_server import hub_env, serve_hub_repo
from net import free_port

REPO = "tester/gsm8k-mini"
TRAIN_ROWS, TEST_ROWS = 24, 6


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real GSM8K pairs under other column names, plus a number column the mapping must ignore."""
    rows = pd.read_csv(GSM8K_CSV).head(TRAIN_ROWS + TEST_ROWS)
    frame = pd.DataFrame({"prompt": rows["question"], "solution": rows["answer"], "id": range(len(rows))})
    return frame.iloc[:TRAIN_ROWS].reset_index(drop=True), frame.iloc[TRAIN_ROWS:].reset_index(drop=True)


@pytest.fixture(scope="module")
def served_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub-dataset")
    repo = root / "repo"
    (repo / "data").mkdir(parents=True)
    train, test = _frames()
    # Parquet, as the Hub's own dataset conversion writes it; the file names give the splits.
    train.to_parquet(repo / "data" / "train-00000-of-00001.parquet", index=False)
    test.to_parquet(repo / "data" / "test-00000-of-00001.parquet", index=False)
    with serve_hub_repo(repo, REPO, workdir=root / "hub", repo_type="datasets") as endpoint:
        yield endpoint, root


def _cli(args, env_extra: dict, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gpt2tune", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_check_reads_the_dataset_and_maps_its_columns(served_dataset, tiny_model_dir, tmp_path):
    endpoint, _ = served_dataset
    done = _cli(["check", "--dataset", REPO, "--base-model", tiny_model_dir], hub_env(endpoint, tmp_path / "cache"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{REPO}, split train (hub dataset, utf-8): kept {TRAIN_ROWS} of {TRAIN_ROWS} rows" in done.stdout
    assert "columns: question <- 'prompt', answer <- 'solution'" in done.stdout
    assert "Ignored 1 other column(s): id." in done.stdout


@pytest.mark.slow
def test_check_reads_another_split_and_refuses_an_unknown_one(served_dataset, tiny_model_dir, tmp_path):
    endpoint, _ = served_dataset
    env = hub_env(endpoint, tmp_path / "cache")
    done = _cli(["check", "--dataset", REPO, "--dataset-split", "test", "--base-model", tiny_model_dir], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{REPO}, split test (hub dataset, utf-8): kept {TEST_ROWS} of {TEST_ROWS} rows" in done.stdout

    done = _cli(["check", "--dataset", REPO, "--dataset-split", "validation", "--base-model", tiny_model_dir], env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: could not load dataset '{REPO}':"), done.stderr
    assert "validation" in lines[0]


@pytest.mark.slow
def test_train_from_the_dataset_records_it(served_dataset, tiny_model_dir, tmp_path):
    endpoint, _ = served_dataset
    out = tmp_path / "out"
    done = _cli(["train", "--dataset", REPO, "--base-model", tiny_model_dir, "--output-dir", out, "--max-steps", 3,
                 "--batch-size", 2, "--max-length", 128, "--eval-steps", 0, "--eval-answer-samples", 0,
                 "--eval-fraction", 0.25], hub_env(endpoint, tmp_path / "cache"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"model saved to {out}" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    train, _ = _frames()
    expected = pd.DataFrame({"question": train["prompt"].str.strip(), "answer": train["solution"].str.strip()})
    assert metrics["dataset"]["hub_dataset"] == REPO and metrics["dataset"]["rows"] == TRAIN_ROWS
    assert metrics["dataset"]["sha256"] == hashlib.sha256(expected.to_csv(index=False).encode()).hexdigest()
    assert metrics["dataset"]["split"] == "train"  # not given: the train split was chosen
    assert metrics["global_step"] == 3
    assert (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert f"datasets:\n- {REPO}\n" in card  # the card's metadata links the dataset
    assert f"- Hub dataset: [{REPO}](https://huggingface.co/datasets/{REPO}), split `train`" in card


@pytest.mark.slow
def test_a_dataset_read_before_is_read_from_the_cache_when_the_hub_is_unreachable(served_dataset, tiny_model_dir,
                                                                                  tmp_path):
    endpoint, _ = served_dataset
    args = ["check", "--dataset", REPO, "--base-model", tiny_model_dir]
    online = _cli(args, hub_env(endpoint, tmp_path / "cache"))
    assert online.returncode == 0, online.stderr[-2000:]
    dead = f"http://127.0.0.1:{free_port()}"
    offline = _cli(args, hub_env(dead, tmp_path / "cache"))  # same cache, no Hub
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert f"{REPO}, split train (hub dataset, utf-8): kept {TRAIN_ROWS} of {TRAIN_ROWS} rows" in offline.stdout


def test_unreachable_hub_fails_with_one_line(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = _cli(["check", "--dataset", REPO], {**hub_env(dead, tmp_path / "cache")})
    assert done.returncode == 1  # the network, not the input: a failure
    assert done.stderr.strip() == (
        f"error: could not load dataset '{REPO}': the Hugging Face Hub is unreachable and the dataset is not in the "
        "local cache; connect to the internet, use a local data file instead")


def test_offline_mode_without_a_cached_copy_fails_with_the_same_line(tmp_path):
    done = _cli(["check", "--dataset", REPO], {**hub_env("http://127.0.0.1:9", tmp_path / "cache"),
                                               "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: could not load dataset '{REPO}': the Hugging Face Hub is unreachable and the dataset is not in the "
        "local cache; connect to the internet, use a local data file instead"]


def test_a_path_is_not_taken_for_a_dataset_id():
    done = _cli(["check", "--dataset", "../etc/passwd"], {})
    assert done.returncode == 2
    assert done.stderr.strip() == "error: dataset '../etc/passwd' is not a Hub dataset id; write it as user/name"


@pytest.mark.slow
def test_the_data_tab_previews_the_dataset(served_dataset, tiny_model_dir, tmp_path):
    from app_server import launch_app_process
    from gradio_client import Client

    endpoint, _ = served_dataset
    env = {**os.environ, **hub_env(endpoint, tmp_path / "cache"), "GPT2TUNE_HOME": str(tmp_path / "home"),
           "GPT2TUNE_BASE_MODEL": str(tiny_model_dir)}
    with launch_app_process(env, tmp_path / "app.log") as (url, _):
        stats, summary, _, table, _, _ = Client(url, verbose=False).predict(
            dataset=REPO, dataset_split="test", max_length=256, api_name="/preview")
    train, test = _frames()
    assert f"**{REPO}, split test** · hub dataset, utf-8 · question ← `prompt`, answer ← `solution`" in summary
    assert f"of {TEST_ROWS} read" in stats
    assert table["data"][0] == [test["prompt"][0].strip(), test["solution"][0].strip()]
