"""What a new user sees in the console: progress on long commands, one-line Hub errors with the
documented exit codes (2 bad input or settings, 1 failures such as the network), honest --help,
and model files with the same permissions as the rest of the folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO

import pytest
from conftest import ROOT, SAMPLE_CSV
from hub_server import hub_env
from net import free_port

from gpt2tune.cli import main


def _cli(args, env_extra: dict | None = None, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gpt2tune", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _help(command: str) -> str:
    out = StringIO()
    with redirect_stdout(out), redirect_stderr(StringIO()), pytest.raises(SystemExit):
        main([command, "--help"])
    return out.getvalue()


def _options(help_text: str) -> dict[str, str]:
    """Each option's help, joined onto one line, keyed by its first flag."""
    blocks = re.split(r"\n  (?=-)", help_text.split("options:", 1)[1])
    return {block.split()[0].rstrip(","): " ".join(block.split()) for block in blocks if block.strip()}


def test_train_help_states_defaults_once_and_plainly():
    text = _help("train")
    options = _options(text)
    assert str(ROOT) not in text  # no absolute path of this machine
    assert options["--csv"].endswith("(default: the bundled sample, sample_qa.csv)")
    assert options["--pack"].endswith("(default: on)")
    assert options["--train-on-answers-only"].endswith("(default: on)")
    assert options["--torch-compile"].endswith("(default: auto)")
    assert options["--resume"].endswith("(default: off)")
    assert options["--auto-reduce-batch-on-oom"].endswith("(default: on)")
    assert "Repeat the flag for several questions" in options["--probe-question"]
    assert options["--question-column"].endswith("(default: detected).")
    doubled = [flag for flag, help_line in options.items() if help_line.count("(default:") > 1]
    assert doubled == []
    assert "(default: None)" not in " ".join(options.values())


def test_init_tiny_weights_have_the_permissions_of_the_other_files(tmp_path):
    code = main(["init-tiny", str(tmp_path / "tiny")])
    assert code == 0
    config_mode = (tmp_path / "tiny" / "config.json").stat().st_mode & 0o777
    weights_mode = (tmp_path / "tiny" / "model.safetensors").stat().st_mode & 0o777
    assert weights_mode == config_mode == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_trained_weights_have_the_permissions_of_the_other_files(trained_run):
    result, _, _ = trained_run
    modes = {path.name: path.stat().st_mode & 0o777 for path in result.output_dir.iterdir() if path.is_file()}
    assert modes["model.safetensors"] == modes["config.json"] == modes["metrics.json"]


@pytest.mark.slow
def test_eval_shows_progress(trained_run, tmp_path):
    result, _, _ = trained_run
    done = _cli(["eval", "--model", result.output_dir, "--csv", SAMPLE_CSV, "--max-samples", 5])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sample_qa.csv: 200 rows; loading" in done.stderr
    assert re.search(r"eval loss: 100%\|.*\| (\d+)/\1 ", done.stderr), done.stderr[-2000:]
    assert re.search(r"answers: 100%\|.*\| 5/5 ", done.stderr), done.stderr[-2000:]
    assert "answer_samples: 5" in done.stdout


@pytest.mark.slow
def test_verify_offline_is_one_hub_line_and_exits_1(trained_run, tmp_path):
    result, _, _ = trained_run
    done = _cli(["verify", "--model", result.output_dir, "--repo-id", "tester/tuned"],
                {**hub_env("http://127.0.0.1:9", tmp_path / "cache"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"loading the local model from {result.output_dir}"  # it says what it is doing
    assert lines[-1] == ("error: could not load 'tester/tuned' back from the Hub: the Hugging Face Hub is "
                         "unreachable; connect to the internet and retry")
    assert not any("Traceback" in line or "OfflineModeIsEnabled" in line for line in lines)


@pytest.mark.slow
def test_push_on_a_dead_network_exits_1(trained_run, tmp_path):
    result, _, _ = trained_run
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = _cli(["push", "--model", result.output_dir, "--repo-id", "tester/tuned"],
                {**hub_env(dead, tmp_path / "cache"), "HF_TOKEN": "hf_not_a_real_token"}, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: push to tester/tuned failed: could not reach the Hugging Face Hub ("), last
    assert "hf_not_a_real_token" not in done.stderr


@pytest.mark.slow
def test_unreachable_base_model_names_the_offline_fallback(tmp_path):
    done = _cli(["train", "--base-model", "gpt2", "--output-dir", tmp_path / "out", "--max-steps", 1],
                {**hub_env("http://127.0.0.1:9", tmp_path / "cache"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: could not load 'gpt2': the Hugging Face Hub is unreachable (offline mode is on: HF_HUB_OFFLINE is "
        "set) and the model is not in the local cache; connect to the internet, give a local model folder, or pass --offline-fallback (train, check) "
        "to use the offline tiny model")


def test_progress_bar_has_no_first_speed_and_is_not_drawn_again_after_the_last_step(monkeypatch):
    """The bar starts at the first logged step (its rate is unknown until a second one, not "1 step in
    0 s"), and closes at the last: the lines after it (eval, saving, verdict) are not each followed by
    the bar drawn again."""
    from gpt2tune import events
    from gpt2tune.cli import ProgressPrinter

    stderr = StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    printer = ProgressPrinter()
    printer(events.Progress(step=1, max_steps=3, epoch=0.1, loss=2.0))
    first_draw = stderr.getvalue()
    for step in (2, 3):
        printer(events.Progress(step=step, max_steps=3, epoch=0.1 * step, loss=2.0))
    printer(events.Status("model saved to runs/x"))
    printer.close()
    assert "?step/s" in first_draw and not re.search(r"\d(step/s|s/step)", first_draw)
    after_last_line = stderr.getvalue().rsplit("model saved to runs/x", 1)[1]
    assert "3/3" in stderr.getvalue() and "3/3" not in after_last_line
