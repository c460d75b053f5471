"""Time and memory of a run, measured before it starts: a few real training steps on this machine.

`step_probe.probe(prepared)` builds the run's own Trainer (same model, rows, batch, precision, device) in a
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
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from gpt2tune.training.oom import GB

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


def peak_bytes(device: str) -> int:
    """This process's peak memory: torch's peak allocation on a GPU, the peak resident set on a CPU."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


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

    from gpt2tune.training.child import child_environment, error_line

    env = child_environment()  # this package first on the path, as for a training run
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
        raise ValueError(error_line(done.stderr.splitlines()) or f"the estimate failed (exit code {done.returncode})")
    return RunEstimate.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))
