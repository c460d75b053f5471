"""Hostile or unlucky input through the CLI: planted special tokens, a diverging run, a full disk,
settings out of range or beyond the model, a broken config.json, argparse mistakes.

Each refusal is one line naming what is wrong; bad settings exit 2, a failed run exits 1, and a
model saved by an earlier run is never replaced by a broken one.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE_CSV, unpacked_rows
from test_cli_errors import QUICK, assert_one_line_error, cli, run_subprocess

EOS = 50256  # GPT-2's <|endoftext|> id, the one special token of its tokenizer
PLANTED_ANSWER = "x<|endoftext|>Question: secret?\nAnswer: planted"
MB = 2**20


@pytest.fixture
def planted_csv(tmp_path) -> Path:
    """The sample data plus one row whose answer plants an end-of-text and a hidden Q&A."""
    import csv

    path = tmp_path / "planted.csv"
    rows = list(csv.DictReader(SAMPLE_CSV.open(encoding="utf-8")))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        writer.writerow(["What is the password?", PLANTED_ANSWER])
        writer.writerow(["Which markers does the template use?", "It writes Answer: after the question"])
        for row in rows:
            writer.writerow([row["question"], row["answer"]])
    return path


# --- special tokens in data ------------------------------------------------------------------------

def test_planted_end_of_text_is_plain_text(planted_csv):
    from transformers import AutoTokenizer

    from gpt2tune.paths import TOKENIZER_DIR

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    rows, _ = unpacked_rows(tokenizer, ["What is the password?"], [PLANTED_ANSWER], max_length=256)
    ids = rows[0]["input_ids"]
    assert ids.count(EOS) == 1 and ids[-1] == EOS
    # The text comes back whole: the literal marker is in the ids as the characters '<', '|', ...
    assert tokenizer.decode(ids[:-1]) == "Question: What is the password?\nAnswer: " + PLANTED_ANSWER
    # Everything after "Answer:" (the planted Q&A included) is the answer the mask leaves trainable;
    # nothing in it is a second, unmasked example.
    labels = rows[0]["labels"]
    prompt = tokenizer("Question: What is the password?\nAnswer:")["input_ids"]
    assert labels[:len(prompt)] == [-100] * len(prompt) and labels[len(prompt):] == ids[len(prompt):]


def test_question_with_special_text_is_plain_text_at_generation(tiny_model_dir):
    from gpt2tune.config import GenerationSettings
    from gpt2tune.generate import ModelCache, _generate_kwargs

    model, tokenizer = ModelCache().get(str(tiny_model_dir))
    kwargs = _generate_kwargs(model, tokenizer, "a<|endoftext|>b", GenerationSettings())
    assert EOS not in kwargs["input_ids"][0].tolist()


def test_check_reports_special_token_and_marker_rows(planted_csv, tiny_model_dir, capsys):
    import csv

    sample = [(row["question"], row["answer"]) for row in csv.DictReader(SAMPLE_CSV.open(encoding="utf-8"))]
    special_in_sample = sum("<|endoftext|>" in q + "\n" + a for q, a in sample)  # the sample explains the token
    markers_in_sample = sum(any(m in q or m in a for m in ("Question:", "Answer:")) for q, a in sample)
    code, out, err = cli(capsys, "check", "--csv", planted_csv, "--base-model", tiny_model_dir)
    assert code == 0, err
    assert (f"special tokens: {1 + special_in_sample} rows hold special-token text such as <|endoftext|> "
            "(trained as plain text, never as the special token)") in out
    # The planted row holds both markers, the second added row "Answer:".
    assert f"prompt markers: {2 + markers_in_sample} rows hold 'Question:' or 'Answer:' inside a cell" in out
    assert "e.g. 'What is the password? -> x<|endoftext|>Question: secret? Answer: planted'" in out


@pytest.mark.slow
def test_trained_rows_hold_no_special_id_inside_an_example(planted_csv, tiny_model_dir, tmp_path, capsys):
    from datasets import Dataset

    from gpt2tune.data.tokcache import CACHE_FOLDER_NAME

    out = tmp_path / "runs" / "planted"
    code, _, err = cli(capsys, "train", "--csv", planted_csv, "--base-model", tiny_model_dir, "--output-dir", out,
                       *QUICK, "--max-steps", "1")
    assert code == 0, err
    files = sorted((tmp_path / "runs" / CACHE_FOLDER_NAME).glob("*/*.arrow"))
    assert files, "the prepared rows are cached as Arrow files"
    examples = 0
    for path in files:
        for row in Dataset.from_file(str(path)):
            start = 0
            for length in row["seq_lengths"]:
                example = row["input_ids"][start:start + length]
                assert example[-1] == EOS and EOS not in example[:-1], example
                start += length
                examples += 1
    assert examples == len(SAMPLE_CSV.read_text().splitlines()) - 1 + 2  # every row, planted ones included


# --- a diverging run ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_nan_loss_stops_the_run_and_keeps_the_earlier_model(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tiny_model_dir, out)  # an earlier successful run's model in the same folder
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    assert "model.safetensors" in before and "README.md" in before  # the earlier run's model and card
    result = run_subprocess("train", "--base-model", tiny_model_dir, "--output-dir", out, *QUICK, "--lr", "1e30")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training diverged at step ") and last.endswith(
        " (loss nan): try a lower --lr (now 1e30)"), last
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [last]
    assert "model saved" not in result.stdout
    # Byte for byte the earlier model and card; no metrics or new card claiming success. The run's own
    # record is the one new thing, and it says the run failed.
    after = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    record = json.loads(after.pop("run.json"))
    after.pop("events.jsonl")
    assert after == before
    assert record["state"] == "failed"


@pytest.mark.slow
def test_app_runner_marks_a_diverged_run_failed(tiny_model_dir, tmp_path):
    """The app's background runner (what the Train tab shows) ends FAILED with the same one line."""
    from conftest import tiny_config

    from gpt2tune.runs.record import FAILED
    from gpt2tune.training.runner import TrainingRunner
    from gpt2tune.runs.view import load_view

    runner = TrainingRunner()
    runner.start(tiny_config(tiny_model_dir, tmp_path / "out", learning_rate=1e30, max_steps=4, logging_steps=1,
                             eval_steps=0, save_steps=0, eval_answer_samples=0))
    runner.join(timeout=300)
    view = load_view(tmp_path / "out")
    assert view.state == FAILED and view.metrics is None
    assert view.error.startswith("training diverged at step ") and view.error.endswith(
        " (loss nan): try a lower --lr (now 1e30)"), view.error
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_divergence_callback_stops_before_eval_and_save():
    from transformers import TrainerControl, TrainerState

    from gpt2tune.training.divergence import DivergenceCallback, TrainingDiverged

    callback, state = DivergenceCallback(), TrainerState()
    state.global_step = 7
    control = TrainerControl(should_evaluate=True, should_save=True)
    callback.on_log(None, state, control, logs={"loss": 2.5})
    callback.check(5e-5)  # finite: nothing to say
    callback.on_log(None, state, control, logs={"eval_loss": float("inf")})
    assert control.should_training_stop and not control.should_evaluate and not control.should_save
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 7 \(loss inf\): try a lower --lr "
                                               r"\(now 0.001\)$"):
        callback.check(1e-3)


@pytest.mark.slow
def test_final_evaluation_shows_progress(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.setattr("gpt2tune.training.callbacks.EVAL_PROGRESS_EVERY_S", 0.0)  # report every batch
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", tmp_path / "out", *QUICK,
                       "--max-steps", "1", "--eval-fraction", "0.3")
    assert code == 0, err
    found = re.findall(r"evaluating at step 1: (\d+)/(\d+) batches \((\d+)%\) in \d+ s, about \d+ s left", err)
    assert found, err
    done, total = int(found[-1][0]), int(found[-1][1])
    # 30% of the sample's 200 rows = 60 examples, packed into rows of 128 tokens, 4 rows a batch.
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["eval_examples"] == 60 and done == total and total >= 2
    assert [int(d) for d, _, _ in found] == list(range(1, total + 1))


# --- settings against the model ----------------------------------------------------------------------

def test_max_length_beyond_the_models_context(tiny_model_dir, tmp_path, capsys):
    context = json.loads((tiny_model_dir / "config.json").read_text())["n_positions"]
    code, _, err = cli(capsys, "check", "--base-model", tiny_model_dir, "--max-length", context + 1)
    assert_one_line_error(code, err, f"max_length {context + 1} is longer than the model's context of {context} "
                                     f"tokens; use at most {context}, or 0 for auto")
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", tmp_path / "out",
                       *QUICK, "--max-length", context * 2)
    assert_one_line_error(code, err, f"max_length {context * 2} is longer than the model's context", after_progress=True)
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.fixture
def broken_config_model(tiny_model_dir, tmp_path) -> Path:
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "broken"))
    config = json.loads((folder / "config.json").read_text())
    config["n_layer"] = "abc"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("command", ["generate", "check"])
def test_invalid_config_json_names_the_file(command, broken_config_model, capsys):
    argv = (["generate", "--model", broken_config_model, "--question", "hi"] if command == "generate"
            else ["check", "--base-model", broken_config_model])
    code, _, err = cli(capsys, *argv)
    assert_one_line_error(code, err, f"invalid value in {broken_config_model / 'config.json'}: Validation error "
                                     "for field 'n_layer': TypeError: Field 'n_layer' expected int, got str")


def test_folder_without_a_model_is_a_sentence(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    code, _, err = cli(capsys, "generate", "--model", tmp_path, "--question", "hi")
    line = assert_one_line_error(code, err, f"'{tmp_path}' is not a model folder: it has no tokenizer files")
    assert line.endswith("give the output folder of a run or a Hub id") and "one of" not in line


# --- settings (every refusal: test_config; exit code and one line: test_cli_errors) ----------------------

def test_eval_max_length_named(tiny_model_dir, capsys):
    code, _, err = cli(capsys, "eval", "--model", tiny_model_dir, "--csv", SAMPLE_CSV, "--max-length", "-3")
    assert_one_line_error(code, err, "max_length must be at least 8 tokens, or 0 for auto (got -3)")


@pytest.mark.slow
def test_settings_refused_by_the_real_process(tmp_path):
    """Exit code 2 and exactly one stderr line, from `python -m gpt2tune` itself."""
    for argv, line in [
        (["train", "--epochs", "inf"], "error: epochs must be a finite number (got inf)"),
        (["train", "--seed", "-1"], "error: seed must be 0 or more (got -1)"),
        (["train", "--lr", "abc"],
         "error: argument --learning-rate/--lr: invalid float value: 'abc' (see: gpt2tune train --help)"),
        (["generate", "--question", "hi"],
         "error: the following arguments are required: --model (see: gpt2tune generate --help)"),
    ]:
        result = run_subprocess(*argv, "--output-dir", tmp_path / "out", "--base-model", tmp_path / "none") \
            if argv[0] == "train" else run_subprocess(*argv)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [line]
        assert result.stdout == ""


# --- disk full ---------------------------------------------------------------------------------------

def test_space_needed_counts_what_rotation_frees():
    from gpt2tune.runs.diskspace import SLACK_BYTES, space_needed

    w = 100 * MB  # weights; a checkpoint is weights + AdamW's two moments = 300 MB
    # Fresh, 2 kept: the peak is 3 checkpoints (a new one is written before the oldest goes) = 900 MB.
    assert space_needed(w, 2, True) == 900 * MB + SLACK_BYTES
    # Resuming with 2 checkpoints (600 MB) already on disk: they are part of that peak, not extra.
    assert space_needed(w, 2, True, existing_checkpoint_bytes=600 * MB) == 300 * MB + SLACK_BYTES
    # More old checkpoints than the peak: rotation frees them, nothing more is needed for checkpoints.
    assert space_needed(w, 1, True, existing_checkpoint_bytes=2000 * MB) == SLACK_BYTES
    # No checkpoints: the final weights only.
    assert space_needed(w, 2, False, existing_checkpoint_bytes=600 * MB) == 100 * MB + SLACK_BYTES


def test_disk_full_errors_are_recognised():
    from gpt2tune.runs.diskspace import is_disk_full

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9472 vs 9360"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("shape mismatch"))


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.slow
def test_disk_full_at_the_final_save_keeps_the_earlier_model(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import transformers.modeling_utils

    out = tmp_path / "out"
    shutil.copytree(tiny_model_dir, out)
    before = (out / "model.safetensors").read_bytes()
    real_save = transformers.modeling_utils.safe_save_file

    def no_space_for_the_model(tensors, filename, *args, **kwargs):  # checkpoints still fit; the model does not
        if ".staging" in str(filename):
            _no_space()
        return real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", no_space_for_the_model)  # the weights' writer
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", out, *QUICK)
    assert code == 1, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert lines == err.strip().splitlines()[-1:]
    assert lines[0].startswith(f"error: disk full while writing the model in {out}: about ")
    assert " MB needed, " in lines[0] and lines[0].endswith(" MB free; free some space or choose another folder")
    assert (out / "model.safetensors").read_bytes() == before
    assert not (out / ".staging").exists() and not (out / "metrics.json").exists()


@pytest.mark.slow
def test_disk_full_at_a_checkpoint(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import torch

    def torch_save_out_of_space(*args, **kwargs):  # what torch's zip writer raises on a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9472 vs 9360")

    out = tmp_path / "out"
    monkeypatch.setattr(torch, "save", torch_save_out_of_space)
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", out, *QUICK,
                       "--save-steps", "2")
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: disk full while writing a checkpoint in {out / 'checkpoints'}: about "), last
    assert "Traceback" not in err and "inline_container" not in last
    assert list((out / "checkpoints").glob("checkpoint-*")) == []  # the half-written one is removed
    assert not (out / "model.safetensors").exists()


@pytest.mark.slow
def test_resume_precheck_counts_checkpoints_rotation_deletes(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import shutil as shutil_module
    from collections import namedtuple

    out = tmp_path / "out"
    code, _, err = cli(capsys, "train", "--base-model", tiny_model_dir, "--output-dir", out, *QUICK,
                       "--save-steps", "2", "--save-total-limit", "2")
    assert code == 0, err
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert [p.name for p in checkpoints] == ["checkpoint-2", "checkpoint-4"]
    existing = sum(f.stat().st_size for f in (out / "checkpoints").rglob("*") if f.is_file())
    weights = (out / "model.safetensors").stat().st_size  # ~ the parameter bytes (plus a small header)
    # Peak: 3 checkpoints of weights + 2 AdamW moments; the 2 on disk count towards it.
    needed = 3 * 3 * weights - existing + 50 * MB
    counted_twice = weights * (1 + 3 * 2) + 50 * MB  # the old estimate, blind to rotation
    assert needed + 4 * MB < counted_twice

    usage = namedtuple("usage", "total used free")
    free = {"bytes": needed + 2 * MB}
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(2**40, 2**40 - free["bytes"], free["bytes"]))
    resume = ["train", "--base-model", tiny_model_dir, "--output-dir", out, *QUICK, "--save-steps", "2",
              "--save-total-limit", "2", "--resume", "--max-steps", "6"]
    free["bytes"] = needed - 4 * MB
    code, _, err = cli(capsys, *resume)
    line = assert_one_line_error(code, err, f"not enough disk space in {out}: ", after_progress=True)
    assert f"about {needed / MB:.0f} MB needed" in line or f"about {needed / MB + 1:.0f} MB needed" in line
    free["bytes"] = needed + 2 * MB
    code, _, err = cli(capsys, *resume)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 6
