"""Every mistake a user can make on the command line ends in one line on stderr, never a traceback.

Bad input and settings exit 2 with `error: <what is wrong and how to fix it>`; `--debug` shows the
traceback instead. Most cases run `gpt2tune.cli.main` in-process (fast); a few run the real
`python -m gpt2tune` to check exit codes and what reaches the terminal.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bad_inputs import CASES, CASES_BY_NAME, write_case
from conftest import SAMPLE_CSV, auto_device

from gpt2tune.cli import main

ERROR_CASES = [case for case in CASES if case.expect_error]
# Settings that make a training run take a few seconds on the tiny model.
QUICK = ["--max-steps", "4", "--batch-size", "4", "--max-length", "128", "--lr", "2e-3", "--warmup-ratio", "0",
         "--eval-steps", "0", "--save-steps", "0", "--eval-answer-samples", "0", "--logging-steps", "1"]


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, expected: str, after_progress: bool = False) -> str:
    """Exit 2 and one `error:` line. Training prints progress lines first; all else prints nothing."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    if after_progress:
        assert [line for line in lines if line.startswith("error:")] == lines[-1:], err
    else:
        assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[-1].startswith("error: ") and expected in lines[-1], lines[-1]
    return lines[-1]


def run_subprocess(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpt2tune", *map(str, argv)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, check=False)


# --- bad data files ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda case: case.name)
def test_check_refuses_bad_file_in_one_line(case, tmp_path, capsys):
    path = write_case(case, tmp_path)
    code, out, err = cli(capsys, "check", "--csv", path)
    assert_one_line_error(code, err, case.expect_error)
    assert out == ""


@pytest.mark.parametrize("name", ["empty_file", "missing_both", "too_many_fields", "malformed_jsonl", "binary_png"])
def test_train_refuses_bad_file_before_loading_anything(name, tmp_path, capsys):
    path = write_case(CASES_BY_NAME[name], tmp_path)
    # The base model does not exist: the data error must come first, before any model loading.
    code, _, err = cli(capsys, "train", "--csv", path, "--base-model", tmp_path / "no-model",
                       "--output-dir", tmp_path / "out")
    assert_one_line_error(code, err, CASES_BY_NAME[name].expect_error)
    assert not (tmp_path / "out").exists()


def test_missing_file_and_wrong_column_mapping(tmp_path, capsys):
    code, _, err = cli(capsys, "check", "--csv", tmp_path / "nope.csv")
    assert_one_line_error(code, err, "file not found")
    code, _, err = cli(capsys, "check", "--csv", SAMPLE_CSV, "--answer-column", "reply")
    assert_one_line_error(code, err, "column 'reply' (--answer-column) not found (columns found: question, answer")


def test_debug_shows_the_traceback(tmp_path, capsys):
    path = write_case(CASES_BY_NAME["missing_both"], tmp_path)
    with pytest.raises(ValueError, match="missing columns 'question' and 'answer'"):
        main(["check", "--csv", str(path), "--debug"])
    with pytest.raises(ValueError, match="missing columns"):
        main(["--debug", "check", "--csv", str(path)])


def test_real_process_exit_codes(tmp_path):
    path = write_case(CASES_BY_NAME["too_many_fields"], tmp_path)
    plain = run_subprocess("check", "--csv", path)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.strip().splitlines() == [(
        "error: data.csv: line 3 has 3 fields but the header has 2 (delimiter ','). "
        "Put quotes around cells that contain ',', or remove the extra fields."
    )]
    debug = run_subprocess("check", "--csv", path, "--debug")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "line 3 has 3 fields" in debug.stderr


# --- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command, flags, line", [
    ("train", ["--lr", "0"], "error: learning_rate must be greater than 0 (got 0.0)"),  # flag and field differ
    ("train", ["--epochs", "inf"], "error: epochs must be a finite number (got inf)"),
    ("generate", ["--question", "hi", "--temperature", "0"], "error: temperature must be greater than 0 (got 0.0)"),
])
def test_a_refused_setting_is_exit_2_and_its_one_line_before_any_work(command, flags, line, tiny_model_dir,
                                                                    tmp_path, capsys):
    """What `validate` refuses (every case: test_config) reaches the command line as exit code 2 and that
    one line on stderr, nothing on stdout, before a model is loaded or an output folder made."""
    where = (["--base-model", tmp_path / "no-model", "--output-dir", tmp_path / "out"] if command == "train"
             else ["--model", tiny_model_dir])
    code, out, err = cli(capsys, command, *flags, *where)
    assert (code, out, err.splitlines()) == (2, "", [line])
    assert not (tmp_path / "out").exists()


def test_unknown_choice_is_argparse_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--device", "tpu"])
    assert exited.value.code == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_an_empty_question_is_refused(tiny_model_dir, capsys):
    code, _, err = cli(capsys, "generate", "--model", tiny_model_dir, "--question", "  ")
    assert_one_line_error(code, err, "the question is empty")


def test_resume_without_checkpoint(tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--resume", "--output-dir", tmp_path / "fresh",
                       "--base-model", tmp_path / "no-model")
    assert_one_line_error(code, err, "nothing to resume in 'fresh': it holds no run record (run.json); start a new run")


# --- models --------------------------------------------------------------------------------------

def test_missing_model_folder(tmp_path, capsys):
    missing = tmp_path / "runs" / "never-trained"
    code, _, err = cli(capsys, "generate", "--model", missing, "--question", "hi")
    assert_one_line_error(code, err, f"model folder '{missing}' does not exist")
    code, _, err = cli(capsys, "check", "--base-model", missing)
    assert_one_line_error(code, err, "does not exist")


@pytest.fixture
def pickle_only_model(tiny_model_dir, tmp_path) -> Path:
    """The old-style checkpoint: config, tokenizer and pytorch_model.bin (a pickle), no safetensors."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(tiny_model_dir / "model.safetensors"), folder / "pytorch_model.bin")
    return folder


def test_pickle_only_model_refused_unless_allowed(pickle_only_model, capsys):
    code, out, err = cli(capsys, "generate", "--model", pickle_only_model, "--question", "hi",
                         "--max-new-tokens", "3")
    assert_one_line_error(code, err, "holds only pickle (.bin) weights")
    assert "--allow-pickle" in err and out == ""
    code, out, err = cli(capsys, "generate", "--model", pickle_only_model, "--question", "hi",
                         "--max-new-tokens", "3", "--allow-pickle")
    assert code == 0 and "error" not in err


def test_pickle_base_model_refused_by_check(pickle_only_model, capsys):
    code, _, err = cli(capsys, "check", "--base-model", pickle_only_model)
    assert_one_line_error(code, err, "pickle")


# --- push ----------------------------------------------------------------------------------------

@pytest.fixture
def model_folder(tiny_model_dir, tmp_path) -> Path:
    """Any folder with config.json and safetensors weights is pushable."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


@pytest.fixture
def no_hub_calls(monkeypatch):
    from huggingface_hub import HfApi

    def forbidden(*args, **kwargs):
        raise AssertionError("the Hub must not be contacted")

    monkeypatch.setattr(HfApi, "create_repo", forbidden)
    monkeypatch.setattr(HfApi, "upload_folder", forbidden)


@pytest.mark.parametrize("repo_id", ["../x", "a/b/c", "", "us er/model", "noslash"])
def test_push_bad_repo_id(repo_id, model_folder, no_hub_calls, capsys):
    code, _, err = cli(capsys, "push", "--model", model_folder, "--repo-id", repo_id,
                       "--token", "hf_NotUsed")
    assert_one_line_error(code, err, "is not of the form user/name")


def test_push_folder_without_model(tmp_path, no_hub_calls, capsys):
    code, _, err = cli(capsys, "push", "--model", tmp_path, "--repo-id", "tester/x", "--token", "hf_NotUsed")
    assert_one_line_error(code, err, "holds no trained model")


def test_push_without_token(model_folder, no_hub_calls, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    code, _, err = cli(capsys, "push", "--model", model_folder, "--repo-id", "tester/x")
    assert_one_line_error(code, err, "no Hugging Face token")


# --- output folder and disk ----------------------------------------------------------------------

def test_output_folder_under_a_file(tiny_model_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # root ignores chmod, but nobody can create a folder inside a regular file
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", blocker / "run", *QUICK)
    assert_one_line_error(code, err, f"output folder {blocker / 'run'} is not writable", after_progress=True)


def test_disk_full_before_training(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import shutil as shutil_module
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(2**30, 2**30 - 2**20, 2**20))
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", tmp_path / "out", *QUICK)
    assert_one_line_error(code, err, "not enough disk space in", after_progress=True)
    assert "1 MB free, about" in err and "MB needed for the model and checkpoints" in err
    assert "loss=" not in err  # refused before the first step


# --- out of memory -------------------------------------------------------------------------------

@pytest.fixture
def oom_on_calls(monkeypatch):
    """Make the model's forward raise out-of-memory on the given (1-based) calls."""
    import torch
    from transformers import GPT2LMHeadModel

    original = GPT2LMHeadModel.forward
    state = {"calls": 0, "fail_on": set(), "error": lambda: torch.OutOfMemoryError("CUDA out of memory.")}

    @functools.wraps(original)  # the Trainer inspects forward's signature for `labels`
    def forward(self, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] in state["fail_on"]:
            raise state["error"]()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GPT2LMHeadModel, "forward", forward)
    return state


@pytest.mark.slow
def test_oom_without_retry_is_explained(oom_on_calls, tiny_model_dir, tmp_path, capsys):
    oom_on_calls["fail_on"] = {1}
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", tmp_path / "out",
                       *QUICK, "--no-auto-reduce-batch-on-oom")
    device = auto_device()  # the run trains where `auto` puts it
    line = assert_one_line_error(code, err, f"out of memory on {device}: batch size 4 × 128 tokens needs ~",
                                 after_progress=True)
    where = {"cuda": "this GPU has", "mps": "this Mac's GPU may use"}.get(device, "this machine has")
    assert "GB for activations on this 3.4M model" in line and where in line
    assert "try --batch-size 2 --gradient-accumulation-steps 2 or --max-length 64" in line
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.slow
def test_oom_retries_with_half_the_batch(oom_on_calls, tiny_model_dir, tmp_path, capsys):
    oom_on_calls["fail_on"] = {1, 2}  # batch 4 fails, batch 2 fails, batch 1 (× 4 accumulation) runs
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", out, *QUICK,
                            "--max-steps", "2")
    assert code == 0, err
    assert "Retrying automatically with batch size 2 and 2 gradient accumulation steps" in err
    assert "Retrying automatically with batch size 1 and 4 gradient accumulation steps" in err
    saved = json.loads((out / "gpt2tune_config.json").read_text())
    # the settings stay as asked; what the retries resolved is recorded beside them
    assert (saved["batch_size"], saved["gradient_accumulation_steps"]) == (4, 1)
    resolved = saved["resolved"]
    assert (resolved["batch_size"], resolved["gradient_accumulation_steps"]) == (1, 4)
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 2
    assert "model saved to" in stdout


@pytest.mark.slow
def test_oom_mid_run_resumes_from_the_last_checkpoint(oom_on_calls, tiny_model_dir, tmp_path, capsys):
    from gpt2tune.training.oom import is_out_of_memory

    # Host out-of-memory on step 3, after checkpoint-2: the retry resumes there with batch 2 × 2.
    oom_on_calls["fail_on"] = {3}
    oom_on_calls["error"] = lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: 2147483648 bytes")
    assert is_out_of_memory(oom_on_calls["error"]())
    out = tmp_path / "out"
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", out, *QUICK,
                       "--save-steps", "2")
    assert code == 0, err
    assert f"from {out / 'checkpoints' / 'checkpoint-2'}" in err
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 4
    steps = [e["step"] for e in json.loads((out / "loss_history.json").read_text()) if "loss" in e]
    assert steps == [1, 2, 3, 4]  # nothing lost, nothing counted twice


@pytest.mark.slow
def test_other_errors_are_not_mistaken_for_oom(oom_on_calls, tiny_model_dir, tmp_path, capsys):
    oom_on_calls["fail_on"] = {1}
    oom_on_calls["error"] = lambda: RuntimeError("shape mismatch in attention")
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", tmp_path / "out", *QUICK)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "error: RuntimeError: shape mismatch in attention (run with --debug for the traceback)"
    )
    assert "Retrying" not in err


def test_oom_advice_for_gpt2_small_on_a_16gb_gpu():
    from transformers import GPT2Config

    from gpt2tune.config import TuneConfig
    from gpt2tune.training.oom import explain, is_out_of_memory

    config = TuneConfig(batch_size=32, max_length=512)
    line = explain(config, 512, GPT2Config(), 124_439_808, "cuda", "bf16", available=16 * 2**30)
    assert line.startswith("out of memory on cuda: batch size 32 × 512 tokens needs ~")
    assert "on this 124M model" in line and "this GPU has 16.0 GB" in line
    batch, accumulation = (int(x) for x in
                           line.split("try --batch-size ")[1].split(" or ")[0].split(" --gradient-accumulation-steps "))
    assert batch < 32 and batch * accumulation == 32
    assert line.endswith("or --max-length 256")
    assert is_out_of_memory(MemoryError()) and not is_out_of_memory(ValueError("out of memory"))
