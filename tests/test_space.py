"""The app as a Hugging Face Space runs it: the variables a Space sets, the app's folder read-only,
and a writable folder standing in for the persistent storage mounted at /data.

Runs must land under the persistent folder (and still be listed after a restart); without
persistent storage the console and the page say runs are lost on restart.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import urllib.request
from pathlib import Path

import pytest
from app_server import ROOT, launch_app_process
from gradio_client import Client

APP_FILES = ("app.py", "requirements.txt", "README.md", "gpt2tune", "assets")
QUICK = dict(question_column=None, answer_column=None, max_length=64, batch_size=4, learning_rate=2e-3,
             logging_steps=1, eval_steps=0, save_steps=0, warmup_ratio=0.0, eval_answer_samples=0)
LOST_ON_RESTART = "This Space has no persistent storage: trained runs are lost when it restarts."


def _read_only_app(folder: Path) -> Path:
    """A copy of the app as a Space checks it out, with every file and folder made read-only."""
    for name in APP_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return folder


def _make_writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _snapshot(folder: Path) -> dict:
    # Checked afterwards rather than trusted to the permissions: root may write to read-only folders.
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def _space_env(app: Path, persistent: Path) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("GPT2TUNE_HOME", "GPT2TUNE_BASE_MODEL", "HF_HOME", "HF_HUB_CACHE", "PYTHONPATH")}
    return {**env,
            # what a Space sets (GRADIO_SERVER_NAME=0.0.0.0 there; the launcher binds 127.0.0.1 here)
            "SPACE_ID": "tester/gpt2tune", "SPACE_AUTHOR_NAME": "tester", "SPACE_REPO_NAME": "gpt2tune",
            "SYSTEM": "spaces", "GRADIO_SERVER_NAME": "0.0.0.0",
            "GPT2TUNE_PERSISTENT_DIR": str(persistent),  # /data on a real Space
            "HF_HUB_OFFLINE": "1",  # no Hub here: the default base model falls back to the tiny one
            "GPT2TUNE_OPEN_TRAINING": "1",  # visitors may train (bounded) on this Space
            "PYTHONPATH": str(app), "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture
def space(tmp_path):
    app = _read_only_app(tmp_path / "app")
    try:
        yield app, _snapshot(app)
    finally:
        _make_writable(app)


@pytest.mark.slow
def test_a_space_with_persistent_storage_keeps_its_runs(space, tmp_path):
    app, before = space
    data = tmp_path / "data"
    data.mkdir()
    env = _space_env(app, data)
    log = tmp_path / "app.log"
    with launch_app_process(env, log, app_dir=app) as (url, _):
        client = Client(url, verbose=False)
        job = client.submit(run_name="space-run", max_steps=3, **QUICK, visitor_key="this-browsers-key-0123456789",
                            api_name="/train")
        list(job)
        status, _, _, metrics = job.outputs()[-1][:4]  # the Train tab's view: status, plot, tiles, metrics
    assert "Finished" in status and metrics["global_step"] == 3
    run = data / "gpt2tune" / "runs" / "space-run"
    assert (run / "model.safetensors").is_file()
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 3
    console = log.read_text()
    assert f"runs are saved under {data / 'gpt2tune'}" in console
    assert "using the offline tiny model" in console  # the Hub is unreachable: said in the console
    assert "no persistent storage" not in console
    assert _snapshot(app) == before  # nothing written into the app's folder

    # A restart (a fresh process on the same storage) still lists the run.
    with launch_app_process(env, tmp_path / "restart.log", app_dir=app) as (url, _):
        table, _, _ = Client(url, verbose=False).predict(api_name="/runs")
    assert "space-run" in [row[0] for row in table["data"]]


@pytest.mark.slow
def test_a_space_without_persistent_storage_says_runs_are_lost(space, tmp_path):
    app, before = space
    env = _space_env(app, tmp_path / "no-data")  # the folder does not exist: no persistent storage
    log = tmp_path / "app.log"
    with launch_app_process(env, log, app_dir=app) as (url, _):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        page_config = opener.open(url + "config", timeout=120).read().decode()
    assert LOST_ON_RESTART in log.read_text()
    assert LOST_ON_RESTART in page_config  # the note is on the page
    assert _snapshot(app) == before
