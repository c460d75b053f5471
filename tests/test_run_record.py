"""The run record's pieces on their own: event lines, a dead process's run, the whole run's totals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from gpt2tune import events
from gpt2tune.runs import record


@pytest.mark.parametrize("event", [
    events.State("interrupted", step=7, message="killed"),
    events.Settings(config={"learning_rate": 0.003, "question_column": "prompt"},
                    data={"file": "faq.csv", "rows": 3, "sha256": "ab" * 32}),
])
def test_new_event_kinds_round_trip_as_one_json_line(event):
    line = event.to_json()
    assert "\n" not in line
    assert events.from_json(line) == event


def test_a_run_left_running_by_a_dead_process_reads_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    assert record.effective_state({"state": "running", "pid": dead.pid, "heartbeat": now}, tmp_path) == "interrupted"
    # this very process, but not recording that folder: a restarted server that got the old pid back
    assert record.effective_state({"state": "running", "pid": os.getpid(), "heartbeat": now}, tmp_path) == "interrupted"
    # a live process whose heartbeat stopped long ago: its pid was reused by something else
    parent = os.getppid()
    assert record.effective_state({"state": "running", "pid": parent, "heartbeat": now - 3600}, tmp_path) == "interrupted"
    assert record.effective_state({"state": "running", "pid": parent, "heartbeat": now}, tmp_path) == "running"
    assert record.effective_state({"state": "stopped", "pid": dead.pid}, tmp_path) == "stopped"


def test_totals_weigh_each_logged_loss_by_the_steps_it_covers(tmp_path):
    (tmp_path / record.RUN_FILE).write_text(json.dumps({"segments": [
        {"runtime_s": 30.0}, {"runtime_s": 12.0}, {"runtime_s": 999.0}]}))
    # steps 1, 2-4 (mean 2.0), 5-6 (mean 1.0): (3 + 3 * 2 + 2 * 1) / 6
    history = [{"step": 1, "loss": 3.0}, {"step": 4, "loss": 2.0}, {"step": 4, "eval_loss": 5.0},
               {"step": 6, "loss": 1.0}]
    totals = record.totals_over_segments(tmp_path, history, {"global_step": 6, "train_runtime": 8.0,
                                                             "train_real_tokens": 600})
    assert totals["train_loss"] == pytest.approx(11 / 6)
    assert totals["train_runtime"] == pytest.approx(30 + 12 + 8)  # the last segment's own figure, not its estimate
    assert totals["train_real_tokens_per_s"] == pytest.approx(600 / 50)
    # history that stops short of the last step: no whole-run figure is made up
    short = record.totals_over_segments(tmp_path, history[:2], {"global_step": 6, "train_runtime": 8.0})
    assert "train_loss" not in short


def test_listing_runs_survives_files_renamed_or_deleted_while_it_reads(tmp_path, monkeypatch):
    """A job renames run.json.tmp into place and prunes checkpoints while another page lists runs: the
    listing must not fail on a name that was there when the folder was read and is gone when it is
    looked at (a real race seen in the app)."""
    from pathlib import Path

    from gpt2tune.runs import store

    monkeypatch.setenv("GPT2TUNE_HOME", str(tmp_path))
    kept = store.runs_root() / "kept-run"
    kept.mkdir(parents=True)
    (kept / "run.json").write_text("{}")
    gone = store.runs_root() / "gone-run"
    gone.mkdir()
    real_iterdir = Path.iterdir

    def racing_iterdir(self):
        names = list(real_iterdir(self))
        if self == kept:
            names.append(kept / "run.json.tmp")  # listed, then renamed away
        if self == store.runs_root():
            import shutil
            shutil.rmtree(gone)  # listed, then deleted before it is read
        return iter(names)

    monkeypatch.setattr(Path, "iterdir", racing_iterdir)
    names = [run.name for run in store.list_runs()]
    assert names == ["kept-run"]
