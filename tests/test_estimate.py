"""Time and memory before Start: `check --estimate` times a few real steps, and the training run
with the same settings records that estimate beside what it measured. Through the CLI, as a user
runs it. Whether the estimate is close (within 2x) is a timing on a shared machine: bench/RESULTS.md
records it; here the comparison's parts are checked, each against a figure the test reads itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from app_server import app_url  # noqa: F401  (a fixture)
from conftest import SAMPLE_CSV


def _gpt2tune(*args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "gpt2tune", *args], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_the_estimate_reaches_the_run_and_is_compared_with_it(tiny_model_dir, tmp_path):
    env = {**os.environ, "GPT2TUNE_CACHE_DIR": str(tmp_path / "cache")}
    settings = ["--csv", str(SAMPLE_CSV), "--base-model", str(tiny_model_dir), "--epochs", "1", "--batch-size", "4",
                "--max-length", "128", "--eval-fraction", "0", "--device", "cpu"]
    estimate = json.loads(_gpt2tune("check", *settings, "--estimate", "--json", env=env).stdout.strip().splitlines()[-1])
    assert estimate["skipped"] is None and estimate["probe_steps"] >= 1
    assert estimate["seconds_per_step"] > 0 and estimate["fits"] is True  # a 3M-parameter model fits anywhere
    assert estimate["minutes"] == pytest.approx(estimate["seconds_per_step"] * estimate["total_steps"] / 60)

    output_dir = tmp_path / "run"
    done = _gpt2tune("train", *settings, "--output-dir", str(output_dir), "--save-steps", "0",
                     "--eval-answer-samples", "0", env=env)
    log = done.stdout + done.stderr
    assert "estimated before start: " in log and "time and memory: estimated" in log
    metrics = json.loads((output_dir / "metrics.json").read_text())
    record = metrics["estimate"]
    assert record["estimated"] == estimate  # the check's own figures, found by the run
    # the step count comes from the Trainer's own rule: the run took exactly as many steps
    assert estimate["total_steps"] == metrics["global_step"] == record["actual"]["steps"]
    # actual seconds per step: the Trainer's runtime over its steps (no periodic evals in this run)
    actual = metrics["train_runtime"] / metrics["global_step"]
    assert record["actual"]["seconds_per_step"] == pytest.approx(actual, rel=1e-6)
    assert record["seconds_per_step_ratio"] == pytest.approx(actual / estimate["seconds_per_step"], rel=1e-6)
    assert record["actual"]["peak_bytes"] > 0


@pytest.mark.slow
def test_changed_settings_find_no_estimate(tiny_model_dir, tmp_path):
    """An estimate is for its settings: a check with another batch size leaves the run without one."""
    env = {**os.environ, "GPT2TUNE_CACHE_DIR": str(tmp_path / "cache")}
    settings = ["--csv", str(SAMPLE_CSV), "--base-model", str(tiny_model_dir), "--max-steps", "2",
                "--max-length", "64", "--eval-fraction", "0", "--device", "cpu"]
    _gpt2tune("check", *settings, "--batch-size", "2", "--estimate", "--json", env=env)
    output_dir = tmp_path / "run"
    done = _gpt2tune("train", *settings, "--batch-size", "4", "--output-dir", str(output_dir), "--save-steps", "0",
                     "--eval-answer-samples", "0", env=env)
    assert "estimated before start" not in done.stderr
    assert "estimate" not in json.loads((output_dir / "metrics.json").read_text())


def test_the_summary_reads_as_the_user_meets_it():
    from gpt2tune.training.estimate import RunEstimate

    GB = 2**30
    fits = RunEstimate(total_steps=300, seconds_per_step=2.0, peak_bytes=3 * GB, available_bytes=8 * GB,
                       probe_steps=3, device="cpu", precision="bf16")
    assert fits.summary().startswith("about 10 min for 300 steps, peak 3.0 GB (fits in 8.0 GB free)")
    tight = RunEstimate(total_steps=30, seconds_per_step=1.0, peak_bytes=int(7.5 * GB), available_bytes=8 * GB,
                        probe_steps=3, device="cpu", precision="fp32")
    assert tight.summary().startswith("under 1 min for 30 steps, peak 7.5 GB (does not fit in 8.0 GB free)")
    skipped = RunEstimate(total_steps=0, skipped="not measured under a multi-process launch")
    assert skipped.summary() == "no time and memory estimate: not measured under a multi-process launch"


@pytest.mark.slow
def test_the_train_tab_estimates_before_start(app_url):  # noqa: F811
    """The Train tab's "Estimate time and memory": the form's run measured (in a child process) and
    said in one line beside the button; bad settings get their one line there instead."""
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    settings = {"max_length": 64, "batch_size": 2, "eval_fraction": 0.0, "question_column": None,
                "answer_column": None}
    text = client.predict(max_steps=4, **settings, api_name="/estimate")
    assert text.startswith("**Estimate:** ") and " for 4 steps, peak " in text and "GB (fits in " in text
    refused = client.predict(max_steps=4, **{**settings, "batch_size": 0}, api_name="/estimate")
    assert refused == "**No estimate:** batch_size must be at least 1 (got 0)"
