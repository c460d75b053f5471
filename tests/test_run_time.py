"""Where a run's time goes (metrics.json `time_s`), the answer-scoring time budget, and the log line
saying which device, precision and torch.compile choice the run made: through the CLI, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import SAMPLE_CSV

EVAL_QUESTIONS = 20  # the sample's 200 rows x eval_fraction 0.1
HALF_BATCH = 16  # scoring answers eval and training questions in pairs of 16


@pytest.mark.slow
def test_time_split_budget_and_choices(tiny_model_dir, tmp_path):
    output_dir = tmp_path / "out"
    command = [
        sys.executable, "-m", "gpt2tune", "train", "--csv", str(SAMPLE_CSV), "--base-model", str(tiny_model_dir),
        "--output-dir", str(output_dir), "--max-steps", "6", "--eval-steps", "3", "--save-steps", "6",
        "--batch-size", "4", "--max-length", "128", "--eval-answer-samples", str(EVAL_QUESTIONS),
        "--answer-scoring-seconds", "0.001", "--device", "cpu",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr

    # The choices for this machine, and why, in one line of the log.
    assert "device: cpu, " in log and "torch.compile off (CPU: the compile warm-up costs more" in log

    metrics = json.loads((output_dir / "metrics.json").read_text())
    split = metrics["time_s"]
    assert set(split) == {"preparation", "training", "evaluation", "answer_scoring", "total"}
    phases = split["preparation"] + split["training"] + split["evaluation"] + split["answer_scoring"]
    assert all(split[name] > 0 for name in split)
    assert phases == pytest.approx(split["total"], abs=0.01)  # every second booked once
    assert split["total"] < wall  # inside the command's own wall time
    # Two periodic evals (steps 3 and 6), the last reused as the final one: their runtimes, as the Trainer
    # logged them (the checkpoint at step 6 keeps its log), are booked to evaluation, not to training.
    state = json.loads((output_dir / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    evals = [entry for entry in state["log_history"] if "eval_runtime" in entry]
    assert [entry["step"] for entry in evals] == [3, 6]
    assert split["evaluation"] >= round(sum(entry["eval_runtime"] for entry in evals), 3) - 0.002  # rounding

    # The budget was spent by the first batch: 16 eval (and 16 training) questions answered, not 20.
    assert metrics["answer_samples_asked"] == EVAL_QUESTIONS
    assert metrics["answer_samples"] == HALF_BATCH
    assert f"answer scoring stopped at its time budget (0.001 s): {HALF_BATCH} of {EVAL_QUESTIONS}" in log
    assert metrics["answer_scoring_s"] <= split["answer_scoring"]
