"""The measuring half of the run estimate: a few real training steps of the prepared run, timed.

Kept apart from `estimate` (the estimate's type and its record, which the training run reads) so
that the run, which imports `estimate`, and this probe, which builds the run's own Trainer, do not
import each other.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

from gpt2tune.training.estimate import RunEstimate, peak_bytes

WARMUP_STEPS = 1  # allocator, oneDNN kernel choice, first batch: not timed
MAX_TIMED_STEPS = 5
MIN_TIMED_STEPS = 2
TIMED_SECONDS = 8.0  # stop timing once this is spent (after MIN_TIMED_STEPS): seconds, not minutes


def probe(prepared) -> RunEstimate:
    """Train a few steps of the prepared run in a throw-away folder and time them."""
    import threading

    import torch
    from transformers import TrainerCallback

    from gpt2tune import events
    from gpt2tune.training.saving import CheckpointTiming
    from gpt2tune.training.train import _build_trainer

    config, devices = prepared.config, prepared.devices
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return RunEstimate(0, skipped="not measured under a multi-process launch", device=devices.device)
    if not len(prepared.train_set):
        return RunEstimate(0, skipped="no training rows", device=devices.device)
    available = _free_bytes(devices.device)

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            if devices.device == "cuda":
                torch.cuda.synchronize()
            self.marks.append(time.perf_counter())
            timed = len(self.marks) - 1 - WARMUP_STEPS
            if timed >= MIN_TIMED_STEPS and self.marks[-1] - self.marks[WARMUP_STEPS] >= TIMED_SECONDS:
                control.should_training_stop = True
            return control

    with tempfile.TemporaryDirectory(prefix="gpt2tune-estimate-") as folder:
        quiet = dataclasses.replace(config, output_dir=folder, max_steps=WARMUP_STEPS + MAX_TIMED_STEPS,
                                    save_steps=0, save_minutes=0, eval_steps=0, early_stopping_patience=0,
                                    probe_questions=[], report_to="none", logging_steps=1, resume=False,
                                    step_limit=0, max_minutes=0)
        trainer, _ = _build_trainer(quiet, prepared.resolved.max_length, prepared.model, prepared.tokenizer,
                                    prepared.train_set, None, devices, events.ignore, threading.Event())
        trainer.remove_callback(CheckpointTiming)  # nothing of the probe is saved
        clock = StepClock()
        trainer.add_callback(clock)
        total_steps = _run_steps(trainer, config)
        if devices.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        peak = peak_bytes(devices.device)
    del trainer
    timed = len(clock.marks) - 1 - WARMUP_STEPS
    if timed < 1:
        return RunEstimate(total_steps, skipped="the run has too few rows for a timed step", device=devices.device)
    per_step = (clock.marks[-1] - clock.marks[WARMUP_STEPS]) / timed
    return RunEstimate(total_steps, per_step, peak, available, timed, devices.device, devices.precision)


def _run_steps(trainer, config) -> int:
    """The run's optimizer steps, by the Trainer's own rule (its dataloader, accumulation, epochs),
    told what the run will tell it (a step limit included)."""
    import copy

    from gpt2tune.training.limits import trainer_max_steps

    args = copy.copy(trainer.args)
    args.max_steps = trainer_max_steps(config, len(trainer.train_dataset))
    args.num_train_epochs = config.epochs
    return int(trainer.set_initial_training_values(args, trainer.get_train_dataloader())[-1])


def _free_bytes(device: str) -> int | None:
    """Free memory now: the GPU's total (the run owns it), or what Linux says is available plus what
    this process already holds (its peak is measured from zero)."""
    from gpt2tune.training.oom import device_memory_bytes

    if device != "cpu":
        return device_memory_bytes(device)
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        held = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return int(fields["MemAvailable"].split()[0]) * 1024 + held
    except (OSError, KeyError, ValueError):
        return device_memory_bytes(device)
