"""Experiment tracking: `--report-to tensorboard` writes event files TensorBoard's own reader parses,
`--report-to trackio` a local Trackio project in the run folder; both hold the losses the run logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SAMPLE_CSV

STEPS = 4


def train(tiny_model_dir, output_dir, report_to: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRACKIO_DIR"}  # the run folder picks it
    done = subprocess.run(
        [sys.executable, "-m", "gpt2tune", "train", "--base-model", str(tiny_model_dir), "--output-dir",
         str(output_dir), "--csv", str(SAMPLE_CSV), "--report-to", report_to, "--max-steps", str(STEPS),
         "--batch-size", "2", "--max-length", "64", "--logging-steps", "1", "--eval-steps", "2", "--save-steps", "0",
         "--eval-answer-samples", "0", "--warmup-ratio", "0"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def logged(output_dir, key: str) -> list[tuple[int, float]]:
    """(step, value) of a loss in the run's own loss_history.json."""
    history = json.loads((output_dir / "loss_history.json").read_text())
    return [(entry["step"], entry[key]) for entry in history if key in entry]


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_logged_losses(tiny_model_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    train(tiny_model_dir, out, "tensorboard")
    folder = out / "logs" / "tensorboard"
    assert list(folder.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(folder))
    events.Reload()
    train_loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    eval_loss = [(e.step, e.value) for e in events.Scalars("eval/loss")]
    assert [step for step, _ in train_loss] == list(range(1, STEPS + 1))
    assert [step for step, _ in eval_loss] == [2, 4]
    for recorded, expected in ((train_loss, logged(out, "loss")), (eval_loss, logged(out, "eval_loss"))):
        assert [s for s, _ in recorded] == [s for s, _ in expected]
        assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(recorded, expected))  # stored as float32
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tracking"] == {"report_to": "tensorboard", "logs": str(folder),
                                   "command": f"tensorboard --logdir {folder}"}


@pytest.mark.slow
def test_trackio_writes_a_local_project_in_the_run_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "run-trackio"
    train(tiny_model_dir, out, "trackio")
    folder = out / "logs" / "trackio"
    assert (folder / "gpt2tune.db").is_file()
    # Read back with Trackio's own storage layer, pointed at that folder (it reads TRACKIO_DIR at import).
    reader = ("import json; from trackio.sqlite_storage import SQLiteStorage as S; "
              "print(json.dumps([S.get_projects(), S.get_runs('gpt2tune'), S.get_logs('gpt2tune', 'run-trackio')]))")
    done = subprocess.run([sys.executable, "-c", reader], env={**os.environ, "TRACKIO_DIR": str(folder)},
                          capture_output=True, text=True, timeout=300, check=True)
    projects, runs, logs = json.loads(done.stdout.strip().splitlines()[-1])
    assert projects == ["gpt2tune"] and runs == ["run-trackio"]
    train_loss = [(row["train/global_step"], row["train/loss"]) for row in logs if "train/loss" in row]
    eval_loss = [(row["train/global_step"], row["eval/loss"]) for row in logs if "eval/loss" in row]
    for recorded, expected in ((train_loss, logged(out, "loss")), (eval_loss, logged(out, "eval_loss"))):
        assert [s for s, _ in recorded] == [s for s, _ in expected]
        assert all(abs(a - b) < 1e-9 for (_, a), (_, b) in zip(recorded, expected))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tracking"]["logs"] == str(folder.resolve()) and metrics["tracking"]["run"] == "run-trackio"
    assert metrics["tracking"]["command"] == f"TRACKIO_DIR={folder.resolve()} trackio show --project gpt2tune"


def test_a_tracker_that_is_not_installed_is_one_line(monkeypatch):
    import importlib.util

    from gpt2tune.training.tracking import check_available

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    expected = r"report_to trackio needs the trackio package: pip install 'gpt2tune\[trackio\]'"
    with pytest.raises(ValueError, match=expected):
        check_available("trackio")
    check_available("tensorboard")
    check_available("none")
