"""Never lose a run: a killed run resumes from its last checkpoint on the same trajectory, Ctrl-C
saves a usable model, and a crash while saving never leaves a model folder that looks complete."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_CSV, tiny_config

from gpt2tune.runs import artifacts

STEPS, SAVE_EVERY = 30, 5


def train_args(tiny_model_dir, output_dir, max_steps=STEPS, save_steps=SAVE_EVERY) -> list:
    """Small rows (2 × 64 tokens) so 30 steps take seconds; one log line per step."""
    return ["train", "--csv", SAMPLE_CSV, "--base-model", tiny_model_dir, "--output-dir", output_dir,
            "--max-steps", max_steps, "--save-steps", save_steps, "--save-total-limit", 2, "--logging-steps", 1,
            "--batch-size", 2, "--max-length", 64, "--lr", 2e-3, "--warmup-ratio", 0, "--eval-steps", 0,
            "--eval-answer-samples", 0, "--seed", 7]


class WatchedRun:
    """`python -m gpt2tune ...` in a subprocess, its output collected while it runs."""

    def __init__(self, argv):
        self.proc = subprocess.Popen([sys.executable, "-m", "gpt2tune", *map(str, argv)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out, self.err = bytearray(), bytearray()
        self.readers = [threading.Thread(target=self._drain, args=(pipe, buffer), daemon=True)
                        for pipe, buffer in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _drain(pipe, buffer: bytearray) -> None:
        while chunk := pipe.read1(65536):
            buffer.extend(chunk)

    def wait_for(self, condition, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.err.decode(errors="replace")):
            if self.proc.poll() is not None:
                self.finish()
                pytest.fail(f"the run ended (code {self.proc.returncode}) before expected:\n{self.err.decode()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting; stderr so far:\n{self.err.decode()}")
            time.sleep(0.02)

    def finish(self, timeout: float = 180) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(10)
        return code, self.out.decode(errors="replace"), self.err.decode(errors="replace")


def last_step_shown(stderr: str, total: int) -> int:
    """The highest step the progress bar reached (it is redrawn at every logged step)."""
    return max((int(n) for n in re.findall(rf"(\d+)/{total}\b", stderr)), default=0)


def logged_losses(output_dir: Path) -> dict[int, float]:
    history = json.loads((output_dir / artifacts.HISTORY_FILE).read_text())
    steps = [entry["step"] for entry in history if "loss" in entry]
    assert len(steps) == len(set(steps)), f"a step was logged twice: {steps}"
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.mark.slow
def test_sigkill_then_resume_continues_the_same_run(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    run = WatchedRun(train_args(tiny_model_dir, out))
    run.wait_for(lambda err: "checkpoint saved:" in err)
    run.proc.send_signal(signal.SIGKILL)
    code, _, killed_err = run.finish()
    assert code == -signal.SIGKILL

    checkpoint = artifacts.latest_checkpoint(out)
    assert checkpoint.parent == out / artifacts.CHECKPOINTS_DIR
    resumed_at = int(checkpoint.name.split("-")[-1])
    killed_at = last_step_shown(killed_err, STEPS)
    assert resumed_at % SAVE_EVERY == 0 and resumed_at < STEPS
    assert 0 <= killed_at - resumed_at <= SAVE_EVERY  # at most one checkpoint interval is redone
    assert not (out / artifacts.WEIGHTS_FILE).exists()  # a killed run leaves no finished-looking model
    # Debris of a save that was killed half-way must not end up in the next published folder.
    (out / ".staging").mkdir()
    (out / ".staging" / "stale-debris.txt").write_text("from a crashed save")

    done = subprocess.run([sys.executable, "-m", "gpt2tune", *map(str, train_args(tiny_model_dir, out)), "--resume"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert f"resuming from {checkpoint}" in done.stderr
    metrics = json.loads((out / artifacts.METRICS_FILE).read_text())
    assert metrics["global_step"] == STEPS
    resumed = logged_losses(out)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert not (out / "stale-debris.txt").exists() and not (out / ".staging").exists()
    kept = sorted(p.name for p in (out / artifacts.CHECKPOINTS_DIR).glob("checkpoint-*"))
    assert kept == ["checkpoint-25", "checkpoint-30"]  # save_total_limit=2 bounds the disk used

    # The same run without interruption: same data order and optimizer state give the same losses.
    from gpt2tune.training.train import train

    straight = tmp_path / "straight"
    train(tiny_config(tiny_model_dir, straight, max_steps=STEPS, save_steps=SAVE_EVERY, save_total_limit=2,
                      logging_steps=1, batch_size=2, max_length=64, eval_steps=0, eval_answer_samples=0, seed=7))
    reference = logged_losses(straight)
    after_resume = [step for step in reference if step > resumed_at]
    assert [resumed[s] for s in after_resume] == pytest.approx([reference[s] for s in after_resume], rel=1e-4)


@pytest.mark.slow
def test_ctrl_c_saves_a_usable_model_and_says_where(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    run = WatchedRun(train_args(tiny_model_dir, out, max_steps=300, save_steps=0))
    run.wait_for(lambda err: last_step_shown(err, 300) >= 3)
    run.proc.send_signal(signal.SIGINT)
    code, stdout, stderr = run.finish()
    assert code == 0, stderr
    assert "stopping at the end of this step and saving the model" in stderr
    assert f"stopped early; model saved to {out}" in stdout
    steps = json.loads((out / artifacts.METRICS_FILE).read_text())["global_step"]
    assert 3 <= steps < 300

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpt2tune.config import GenerationSettings
    from gpt2tune.generate import answer

    import torch
    from safetensors.torch import load_file

    from gpt2tune.data.prompt import format_prompt

    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    # usable: the saved weights are the trained ones, and they answer like plain greedy decoding does
    assert not torch.equal(load_file(out / "model.safetensors")["transformer.wte.weight"],
                           load_file(tiny_model_dir / "model.safetensors")["transformer.wte.weight"])
    encoded = tokenizer(format_prompt("What is gpt2tune?"), return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=5, repetition_penalty=1.0,
                             pad_token_id=tokenizer.eos_token_id)
    by_hand = tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    settings = GenerationSettings(max_new_tokens=5, repetition_penalty=1.0)
    assert answer(model, tokenizer, "What is gpt2tune?", settings) == by_hand


# --- a crash while publishing the final model ------------------------------------------------------

MODEL_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               artifacts.CONFIG_FILE, artifacts.METRICS_FILE, artifacts.WEIGHTS_FILE]


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even `finally` cleanup of the caller."""


def make_folder(folder: Path, generation: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        (folder / name).write_text(f"{generation} {name}")


def test_crash_at_any_point_of_publishing_leaves_no_mixed_model(tmp_path, monkeypatch):
    real_replace = os.replace
    for crash_after in range(len(MODEL_FILES) + 1):
        output_dir, staging = tmp_path / f"out{crash_after}", tmp_path / f"out{crash_after}" / ".staging"
        make_folder(output_dir, "old")  # a previous run's complete model
        make_folder(staging, "new")
        moves = []

        def replace(src, dst, moves=moves, limit=crash_after):
            if len(moves) == limit:
                raise Killed
            moves.append(Path(dst).name)
            real_replace(src, dst)

        monkeypatch.setattr(artifacts.os, "replace", replace)
        try:
            artifacts.publish_folder(staging, output_dir)
        except Killed:
            pass
        monkeypatch.setattr(artifacts.os, "replace", real_replace)

        weights = output_dir / artifacts.WEIGHTS_FILE
        if crash_after < len(MODEL_FILES):
            # Old weights beside new config/metrics would load as a model that never existed.
            assert not weights.exists(), f"killed after moving {moves}: weights must not be there yet"
        else:
            for name in MODEL_FILES:
                assert (output_dir / name).read_text() == f"new {name}"
            assert not staging.exists()


def test_latest_checkpoint_skips_half_written_ones(tmp_path):
    folder = tmp_path / artifacts.CHECKPOINTS_DIR
    for step, state in [(5, '{"global_step": 5}'), (10, '{"global_st'), (15, None)]:
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if state is not None:  # killed while writing trainer_state.json (10) or before it (15)
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert artifacts.latest_checkpoint(tmp_path) == folder / "checkpoint-5"
