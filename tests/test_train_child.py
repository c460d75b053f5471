"""The app's run is the CLI's run, in a process of its own: its pid is in run.json, killing it leaves
the run failed while the server keeps serving, and a child that does not stop is ended.

The kills are real signals (SIGKILL, SIGSTOP) sent to the real child process."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from app_server import app_url  # noqa: F401  (a fixture)
from gradio_client import Client
from test_run_folder import wait_until

from gpt2tune.cli import build_parser, config_from_args
from gpt2tune.config import TuneConfig


def record_of(folder: Path) -> dict:
    try:
        return json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def test_the_child_command_parses_back_to_the_same_settings():
    from gpt2tune.training.child import train_command

    config = TuneConfig(csv="/data/a b.csv", max_length=0, strip_html=True, pack=False, method="lora",
                        lora_target_modules=["c_attn", "c_fc"], probe_questions=["-5 degrees?", "Why, then?"],
                        learning_rate=3e-5, epochs=1.5, question_column="prompt", torch_compile="off",
                        dataset_revision=None, output_dir="/runs/x", resume=True)
    argv = train_command(config, fallback_to_tiny=True)
    assert argv[1:4] == ["-m", "gpt2tune", "train"]
    args = build_parser().parse_args(argv[3:])
    assert config_from_args(TuneConfig, args) == config and args.offline_fallback is True


@pytest.mark.slow
def test_the_childs_reason_is_its_cli_error_line_and_nothing_else():
    """The runner and the estimate read a child's failure the same way: the CLI's one `error:` line,
    or nothing when it printed none (a crash's traceback is not a reason to show a user)."""
    from gpt2tune.training.child import error_line

    assert error_line(["loading…", "error: row 3: the answer is empty", ""]) == "row 3: the answer is empty"
    assert error_line(["error: first", "warning: later", "error: last"]) == "last"
    assert error_line(["Traceback (most recent call last):", '  File "x.py"', "RuntimeError: boom"]) == ""
    assert error_line([]) == ""


def test_an_app_run_is_its_own_process_and_killing_it_fails_the_run_not_the_server(app_url):  # noqa: F811
    home = Path(os.environ["GPT2TUNE_HOME"])
    folder = home / "runs" / "child-run"
    client = Client(app_url, verbose=False)
    job = client.submit(run_name="child-run", max_steps=500, max_length=64, batch_size=2, eval_steps=0, save_steps=0,
                        eval_answer_samples=0, logging_steps=1, question_column=None, answer_column=None,
                        api_name="/train")
    saved = wait_until(lambda: record_of(folder) if record_of(folder).get("step", 0) >= 2 else None)
    child = saved["pid"]
    assert child != os.getpid()  # the server is this process; the run is another
    os.kill(child, 0)  # ... and alive
    os.kill(child, signal.SIGKILL)
    saved = wait_until(lambda: record_of(folder) if record_of(folder).get("state") == "failed" else None, timeout=60)
    assert saved["message"] == "the training process was killed (SIGKILL)"
    list(job)  # the page that started it follows it to its end
    assert "Failed" in job.outputs()[-1][0] and "killed (SIGKILL)" in job.outputs()[-1][0]
    # the server keeps serving: another page asks, and is answered
    status = Client(app_url, verbose=False).predict("child-run", api_name="/show_run")[0]
    assert "Failed" in status and "the training process was killed (SIGKILL)" in status


@pytest.mark.slow
def test_a_child_that_does_not_stop_within_the_bound_is_ended(tiny_model_dir, tmp_path):
    from gpt2tune.training.runner import TrainingRunner

    folder = tmp_path / "hung"
    runner = TrainingRunner(stop_grace_s=2)
    runner.start(TuneConfig(base_model=str(tiny_model_dir), output_dir=str(folder), max_steps=500, max_length=64,
                            batch_size=2, eval_steps=0, save_steps=0, eval_answer_samples=0, logging_steps=1))
    saved = wait_until(lambda: record_of(folder) if record_of(folder).get("step", 0) >= 2 else None)
    os.kill(saved["pid"], signal.SIGSTOP)  # a step that never ends: the child cannot act on Stop
    assert runner.stop()
    runner.join(60)
    saved = record_of(folder)
    assert saved["state"] == "failed" and not runner.busy
    assert saved["message"].startswith("did not stop within 2 s of Stop, so it was ended (SIGKILL)")
    with pytest.raises(OSError):
        os.kill(saved["pid"], 0)  # gone, and reaped
