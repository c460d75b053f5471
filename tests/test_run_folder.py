"""A run is its folder: the app's Train tab and `gpt2tune train --resume` continue *that* run, with its
own data and settings, after a stop, a page reload, a server kill or a restart.

Through the surfaces users meet: the app over gradio_client (in this process, and as `python app.py`
killed with SIGKILL), and the CLI in a subprocess.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from app_server import ROOT, app_url  # noqa: F401  (app_url is a fixture)
from conftest import SAMPLE_CSV, tiny_config
from gradio_client import Client, handle_file
from net import free_port, http_status

from gpt2tune.runs import artifacts

pytestmark = pytest.mark.slow

# Not the defaults anywhere: a resume that took the form's or the defaults' values would train differently.
SETTINGS = {"max_length": 64, "batch_size": 2, "learning_rate": 3e-3, "logging_steps": 1, "eval_steps": 0,
            "save_steps": 100, "warmup_ratio": 0.0, "eval_answer_samples": 0, "seed": 11, "eval_fraction": 0.1}
DETECTED = {"question_column": None, "answer_column": None}  # the sample's question/answer header


def faq_csv(path: Path) -> Path:
    """The sample's rows under other column names (and an extra column), so columns must be chosen."""
    with open(SAMPLE_CSV, newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    with open(path, "w", newline="", encoding="utf-8") as target:
        writer = csv.writer(target)
        writer.writerow(["id", "prompt", "response"])
        for n, row in enumerate(rows):
            writer.writerow([n, row["question"], row["answer"]])
    return path


def alert_of(outputs) -> str:
    """The inline alert's text (the 7th output of the Train tab's handlers)."""
    return html.unescape(re.sub(r"<[^>]+>", "", outputs[6] or "")).strip()


def status_of(client, run=None) -> str:
    return client.predict(api_name="/status")[0] if run is None else client.predict(run, api_name="/show_run")[0]


def wait_until(condition, timeout: float = 240, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def run_record(home: Path, name: str) -> dict:
    return json.loads((home / "runs" / name / "run.json").read_text())


def train_losses(events_file: Path) -> dict[int, float]:
    """Step -> train loss, the last segment's value where a step was logged twice."""
    losses = {}
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "log":
            losses[event["step"]] = event["loss"]
    return losses


def uninterrupted_losses(tiny_model_dir, tmp_path, config: dict) -> dict[int, float]:
    """The same run, trained straight through by the library."""
    from gpt2tune.config import TuneConfig
    from gpt2tune.training.train import train

    values = {**config, "output_dir": str(tmp_path / "straight"), "resume": False, "base_model": str(tiny_model_dir)}
    train(TuneConfig(**values))
    return train_losses(tmp_path / "straight" / "events.jsonl")


# --- the app, in this process ---------------------------------------------------------------------
def test_stop_resume_keeps_its_data_and_settings(app_url, tiny_model_dir, tmp_path):  # noqa: F811
    home = Path(os.environ["GPT2TUNE_HOME"])
    client = Client(app_url, verbose=False)
    data = faq_csv(tmp_path / "faq.csv")
    job = client.submit(csv=handle_file(str(data)), question_column="prompt", answer_column="response",
                        run_name="faq-run", max_steps=14, **SETTINGS, api_name="/train")
    wait_until(lambda: run_record(home, "faq-run")["step"] >= 3 if (home / "runs/faq-run/run.json").exists() else 0)
    client.predict(api_name="/stop")
    list(job)
    status = job.outputs()[-1][0]
    saved = run_record(home, "faq-run")
    stopped_at = saved["step"]
    assert "Stopped" in status and saved["state"] == "stopped" and 3 <= stopped_at < 14
    # stopped before the first checkpoint interval (100 steps), yet resumable: the stop wrote one
    assert f"Resume continues from step {stopped_at}" in status
    config = saved["config"]
    assert (config["question_column"], config["answer_column"]) == ("prompt", "response")
    assert config["learning_rate"] == 3e-3 and config["seed"] == 11 and config["max_steps"] == 14
    copy = home / "runs" / "faq-run" / "data" / "faq.csv"
    assert Path(config["csv"]) == copy and copy.read_bytes() == data.read_bytes()
    model = home / "runs" / "faq-run" / artifacts.WEIGHTS_FILE
    model_bytes = model.read_bytes()

    # Changed data: refused with one line, nothing is touched.
    copy.write_text(copy.read_text() + "99,A new question?,A new answer.\n")
    outputs = client.predict("faq-run", 0, 3, api_name="/resume")
    alert = alert_of(outputs)
    assert "data file faq.csv changed since run 'faq-run' was trained on it" in alert
    assert "\n" not in alert and "/" not in alert
    assert model.read_bytes() == model_bytes and run_record(home, "faq-run")["state"] == "stopped"
    copy.write_bytes(data.read_bytes())

    # Resume with the form at its defaults (max steps 0, epochs 3): the run's own settings are used,
    # and they come back into the form; the Run name box is emptied (it names the next new run).
    job = client.submit("faq-run", 0, 3, api_name="/resume")
    updates = list(job)
    final = job.outputs()[-1]
    assert "Finished" in final[0], final[0]
    form = dict(zip(["run_name", "epochs", "max_steps", "learning_rate", "batch_size"], updates[0][9:14]))
    assert form == {"run_name": "", "epochs": 3.0, "max_steps": 14, "learning_rate": 3e-3, "batch_size": 2}
    metrics = final[3]
    assert metrics["global_step"] == 14 and metrics["segments"] == 2
    saved = run_record(home, "faq-run")
    assert saved["state"] == "finished" and saved["config"]["learning_rate"] == 3e-3
    assert metrics["train_runtime"] == pytest.approx(sum(s["runtime_s"] for s in saved["segments"]))

    # The curve continues from the stop step, and equals an uninterrupted run of the same seed.
    resumed = train_losses(home / "runs" / "faq-run" / "events.jsonl")
    assert sorted(resumed) == list(range(1, 15))
    straight = uninterrupted_losses(tiny_model_dir, tmp_path, saved["config"])
    assert [resumed[s] for s in range(1, 15)] == pytest.approx([straight[s] for s in range(1, 15)], rel=1e-4)
    plotted = {row[0]: row[1] for row in final[1]["data"] if row[2] == "train"}
    assert plotted == pytest.approx(resumed)
    expected_loss = sum(straight.values()) / len(straight)
    assert metrics["train_loss"] == pytest.approx(expected_loss, rel=1e-4)

    # Finished: a resume says so instead of training a step more.
    alert = alert_of(client.predict("faq-run", 0, 3, api_name="/resume"))
    assert "run 'faq-run' is finished (step 14): nothing to resume" in alert


def test_start_while_training_says_so_and_keeps_the_view(app_url):  # noqa: F811
    client = Client(app_url, verbose=False)
    job = client.submit(run_name="long-run", max_steps=300, **DETECTED, **{**SETTINGS, "save_steps": 0}, api_name="/train")
    wait_until(lambda: "step " in status_of(client) and "long-run" in status_of(client))
    outputs = Client(app_url, verbose=False).predict(run_name="other", max_steps=5, **DETECTED, **SETTINGS, api_name="/train")
    assert "run 'long-run' is training (step" in alert_of(outputs)
    assert "stop it, or wait for it to end" in alert_of(outputs)
    client.predict(api_name="/stop")
    list(job)
    again = client.predict(run_name="long-run", max_steps=5, **DETECTED, **SETTINGS, api_name="/train")
    assert "run 'long-run' already exists" in alert_of(again)


# --- the app as a process: killed, restarted -------------------------------------------------------
@contextmanager
def app_process(home: Path, tiny_model_dir, log_path: Path, **env_extra):
    port = free_port()
    env = {**os.environ, "GPT2TUNE_HOME": str(home), "GPT2TUNE_BASE_MODEL": str(tiny_model_dir),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": str(ROOT), **env_extra}
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: http_status(url) == 200 or process.poll() is not None, timeout=240)
            assert process.poll() is None, log_path.read_text()[-3000:]
            yield process, url
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(30)


def test_killed_server_shows_the_run_interrupted_and_resumes_it(tiny_model_dir, tmp_path):
    home = tmp_path / "home"
    log = tmp_path / "app.log"
    with app_process(home, tiny_model_dir, log) as (process, url):
        client = Client(url, verbose=False)
        client.submit(run_name="killed", max_steps=60, **DETECTED, **{**SETTINGS, "save_steps": 4}, api_name="/train")
        wait_until(lambda: (home / "runs/killed/run.json").exists() and run_record(home, "killed")["step"] >= 9)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    killed_at = run_record(home, "killed")["step"]
    checkpoint = int(artifacts.latest_checkpoint(home / "runs" / "killed").name.split("-")[-1])
    assert run_record(home, "killed")["state"] == "running"  # as the killed process left it

    with app_process(home, tiny_model_dir, log) as (process, url):
        client = Client(url, verbose=False)
        outputs = client.predict(api_name="/status")  # what a freshly opened page shows: the latest run
        assert "Interrupted" in outputs[0] and "killed" in outputs[0]
        assert f"step {killed_at:,}" in outputs[0] and f"Resume continues from step {checkpoint}" in outputs[0]
        labels = [label for label, _ in outputs[7]["choices"]]
        assert f"killed · interrupted · step {killed_at}" in labels
        job = client.submit("killed", 0, 3, api_name="/resume")
        wait_until(lambda: run_record(home, "killed")["step"] > killed_at)
        assert run_record(home, "killed")["segments"][-1]["from_step"] == checkpoint
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        del job

    # With auto-resume on, the restarted server continues the run by itself.
    before = run_record(home, "killed")["step"]
    with app_process(home, tiny_model_dir, log, GPT2TUNE_AUTO_RESUME="1") as (process, url):
        wait_until(lambda: run_record(home, "killed")["state"] == "running"
                   and len(run_record(home, "killed")["segments"]) == 3)
        wait_until(lambda: run_record(home, "killed")["step"] > before)
        client = Client(url, verbose=False)
        assert "Training" in client.predict(api_name="/status")[0]
        client.predict(api_name="/stop")
        wait_until(lambda: run_record(home, "killed")["state"] == "stopped")


# --- the CLI -------------------------------------------------------------------------------------
def cli(*argv, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "gpt2tune", *map(str, argv)], capture_output=True, text=True,
                          timeout=600, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def cli_train(tiny_model_dir, out, max_steps, save_steps=5, seed=7, *extra):
    return ["train", "--csv", SAMPLE_CSV, "--base-model", tiny_model_dir, "--output-dir", out, "--max-steps",
            max_steps, "--save-steps", save_steps, "--logging-steps", 1, "--batch-size", 2, "--max-length", 64,
            "--lr", 2e-3, "--warmup-ratio", 0, "--eval-steps", 0, "--eval-answer-samples", 0, "--seed", seed, *extra]


def test_cli_new_run_never_resumes_another_runs_checkpoints(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    cli(*cli_train(tiny_model_dir, out, 12, seed=1))
    assert artifacts.latest_checkpoint(out).name == "checkpoint-12"
    # A new run in the same folder, killed after its first checkpoint.
    proc = subprocess.Popen([sys.executable, "-m", "gpt2tune", *map(str, cli_train(tiny_model_dir, out, 30))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (out / "checkpoints/checkpoint-5/trainer_state.json").exists(), every=0.05)
    proc.kill()
    stderr = proc.communicate()[1]
    assert "removed 2 checkpoint(s) of the run that was there before" in stderr
    assert not (out / "checkpoints/checkpoint-12").exists()
    # `--resume` from the folder alone: no other flag needed, and it continues the new run.
    done = cli("train", "--resume", "--output-dir", out)
    resumed_from = int(run_record_at(out)["segments"][-1]["from_step"])
    assert 5 <= resumed_from < 30 and resumed_from % 5 == 0
    assert "resuming from" in done.stderr and f"checkpoint-{resumed_from}" in done.stderr
    metrics = json.loads((out / artifacts.METRICS_FILE).read_text())
    assert metrics["global_step"] == 30 and json.loads((out / artifacts.CONFIG_FILE).read_text())["seed"] == 7

    # the whole run's train_loss: the mean of every step's loss of the same run trained straight
    straight = tmp_path / "straight"
    cli(*cli_train(tiny_model_dir, straight, 30))
    losses = train_losses(straight / "events.jsonl")
    assert sorted(losses) == list(range(1, 31))
    assert metrics["train_loss"] == pytest.approx(sum(losses.values()) / 30, rel=1e-4)
    assert train_losses(out / "events.jsonl") == pytest.approx(losses, rel=1e-4)

    # finished: said, nothing trained
    before = (out / artifacts.WEIGHTS_FILE).read_bytes()
    done = cli("train", "--resume", "--output-dir", out, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: run 'out' is finished (step 30): nothing to resume; "
                                   "to train it longer, resume with more max steps or epochs")
    assert (out / artifacts.WEIGHTS_FILE).read_bytes() == before
    assert not (out / "checkpoints/checkpoint-31").exists()
    # settings are the run's: a different one is refused in one line
    done = cli("train", "--resume", "--output-dir", out, "--max-steps", 40, "--lr", 1e-3, check=False)
    assert done.returncode == 2 and "learning_rate 0.001 was given but the run has 0.002" in done.stderr


def run_record_at(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def test_library_resume_of_a_folder_without_a_checkpoint_says_so(tiny_model_dir, tmp_path):
    from gpt2tune.config import TuneConfig
    from gpt2tune.training.train import train

    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"state": "stopped", "step": 3, "config": tiny_config(
        tiny_model_dir, out).to_dict()}))
    with pytest.raises(ValueError, match="run 'out' has no usable checkpoint to resume from"):
        train(TuneConfig(output_dir=str(out), resume=True))
