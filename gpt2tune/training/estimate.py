"""Time and memory of a run, measured before it starts: a few real training steps on this machine.

`probe(prepared)` builds the run's own Trainer (same model, rows, batch, precision, device) in a
throw-away folder, trains a few steps and times them, then drops it: the weights it touched belong
to a `check`, never to a run. Seconds per step times the run's step count (the Trainer's own rule)
is the time; the process's peak memory (RSS on a CPU, torch's peak allocation on a GPU) is the
memory, set against what the machine has free. The estimate is kept in the user's cache folder
under the run's time-relevant settings, so the training run that follows finds it and records
estimate against actual in its log and metrics.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gpt2tune.training.oom import GB

WARMUP_STEPS = 1  # allocator, oneDNN kernel choice, first batch: not timed
MAX_TIMED_STEPS = 5
MIN_TIMED_STEPS = 2
TIMED_SECONDS = 8.0  # stop timing once this is spent (after MIN_TIMED_STEPS): seconds, not minutes
FITS_SHARE = 0.9  # a peak within 90 % of the free memory fits
# What a step's time and a run's step count depend on; two runs agreeing on these take the same time.
TIME_SETTINGS = ("base_model", "batch_size", "gradient_accumulation_steps", "max_length", "pack",
                 "train_on_answers_only", "method", "lora_r", "lora_target_modules", "lora_dropout", "dropout",
                 "epochs", "max_steps", "eval_fraction", "seed", "answer_lists", "overlong")


@dataclass
class RunEstimate:
    total_steps: int
    seconds_per_step: float | None = None
    peak_bytes: int | None = None
    available_bytes: int | None = None  # free memory when the probe started (GPU: the device's total)
    probe_steps: int = 0  # timed steps
    device: str = ""
    precision: str = ""
    skipped: str | None = None  # why nothing was measured

    @property
    def minutes(self) -> float | None:
        return None if self.seconds_per_step is None else self.seconds_per_step * self.total_steps / 60

    @property
    def fits(self) -> bool | None:
        if self.peak_bytes is None or not self.available_bytes:
            return None
        return self.peak_bytes <= FITS_SHARE * self.available_bytes

    def summary(self) -> str:
        """"about N min for M steps, peak X GB (fits)", or why there is no estimate."""
        if self.skipped:
            return f"no time and memory estimate: {self.skipped}"
        verdict = {True: "fits", False: "does not fit", None: "free memory unknown"}[self.fits]
        have = f" in {self.available_bytes / GB:.1f} GB free" if self.available_bytes else ""
        return (f"{_minutes(self.minutes)} for {self.total_steps:,} steps, peak {self.peak_bytes / GB:.1f} GB "
                f"({verdict}{have}); {self.seconds_per_step:.2f} s per step over {self.probe_steps} measured steps "
                f"on {self.device} in {self.precision}")

    def to_dict(self) -> dict:
        return {**asdict(self), "minutes": self.minutes, "fits": self.fits}

    @classmethod
    def from_dict(cls, values: dict) -> "RunEstimate":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _minutes(minutes: float) -> str:
    return "under 1 min" if minutes < 1 else f"about {minutes:.0f} min"


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


def peak_bytes(device: str) -> int:
    """This process's peak memory: torch's peak allocation on a GPU, the peak resident set on a CPU."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


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


# --- from the check to the run --------------------------------------------------------------------
def settings_key(prepared, fingerprint: dict | None = None) -> str:
    """The run's time-relevant settings, device choices and data, hashed: a check and the training
    run that follows it (CLI or app, the data copied or not) agree on it. fingerprint: the data's
    (results.source_fingerprint), when the caller has it already."""
    from gpt2tune.training.results import source_fingerprint

    config, devices = prepared.config, prepared.devices
    fingerprint = fingerprint or source_fingerprint(config, prepared.data)
    values = {name: getattr(config, name) for name in TIME_SETTINGS}
    values.update(base_model=prepared.base_model, device=devices.device, precision=devices.precision,
                  compile=devices.compile, data=fingerprint.get("sha256") or fingerprint)
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _folder() -> Path:
    from gpt2tune.device import probe_cache_file

    return probe_cache_file().parent / "estimates"


def remember(key: str, estimate: RunEstimate) -> None:
    """Best effort: without a writable cache folder the run only lacks its comparison."""
    try:
        _folder().mkdir(parents=True, exist_ok=True)
        (_folder() / f"{key}.json").write_text(json.dumps(estimate.to_dict()) + "\n")
    except OSError:
        pass


def recall(key: str) -> RunEstimate | None:
    try:
        return RunEstimate.from_dict(json.loads((_folder() / f"{key}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def against_actual(estimate: RunEstimate, metrics: dict, log_history: list[dict]) -> dict:
    """Estimate and actual side by side, for metrics.json: seconds per step (the training time the
    Trainer measured, less its periodic evals, over the steps run), minutes, steps and peak memory."""
    steps = metrics.get("global_step") or 0
    evals = sum(entry.get("eval_runtime", 0.0) for entry in log_history)
    training_s = (metrics.get("train_runtime") or 0.0) - evals
    actual = training_s / steps if steps and training_s > 0 else None
    peak = peak_bytes(metrics.get("device", "cpu"))
    return {
        "estimated": estimate.to_dict(),
        "actual": {"seconds_per_step": actual, "steps": steps, "minutes": training_s / 60, "peak_bytes": peak},
        "seconds_per_step_ratio": actual / estimate.seconds_per_step if actual and estimate.seconds_per_step else None,
    }


def comparison_line(record: dict) -> str:
    estimated, actual = record["estimated"], record["actual"]
    ratio = record["seconds_per_step_ratio"]
    return (f"time and memory: estimated {estimated['seconds_per_step']:.2f} s per step and {estimated['total_steps']:,} "
            f"steps, peak {estimated['peak_bytes'] / GB:.1f} GB; actual {actual['seconds_per_step'] or 0:.2f} s per step"
            f"{f' ({ratio:.2f}x the estimate)' if ratio else ''} and {actual['steps']:,} steps, peak "
            f"{actual['peak_bytes'] / GB:.1f} GB")


# --- for a server: the probe in a child process ---------------------------------------------------
CHILD_TIMEOUT_S = 600


def estimate_in_child(config, fallback_to_tiny: bool = False, timeout_s: float = CHILD_TIMEOUT_S) -> RunEstimate:
    """`python -m gpt2tune check --estimate --json` on these settings, in a process of its own: the
    probe's model, rows and peak memory leave with it, and a long-lived server keeps none of them.
    Its one-line error becomes a ValueError with the same line."""
    import subprocess
    import sys

    import gpt2tune

    source_root = str(Path(gpt2tune.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (source_root, os.environ.get("PYTHONPATH"))))}
    with tempfile.TemporaryDirectory(prefix="gpt2tune-estimate-") as folder:
        settings = Path(folder) / "settings.json"
        config.save(settings)
        command = [sys.executable, "-m", "gpt2tune", "check", "--config", str(settings), "--estimate", "--json",
                   *(["--offline-fallback"] if fallback_to_tiny else [])]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise ValueError(f"the estimate took longer than {timeout_s:.0f} s and was stopped") from None
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ValueError((lines[-1] if lines else f"the estimate failed (exit code {done.returncode})")
                         .removeprefix("error: "))
    return RunEstimate.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))
