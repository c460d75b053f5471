"""Experiment tracking: the Trainer's own TensorBoard and Trackio integrations, logging into the run folder.

`report_to` picks one (both are optional extras: `pip install 'gpt2tune[tensorboard]'` or
`'gpt2tune[trackio]'`). The logs live under `<output_dir>/logs/`:

- tensorboard: event files in `logs/tensorboard/` (`tensorboard --logdir <output_dir>/logs/tensorboard`);
- trackio: a local Trackio project named "gpt2tune", one run per output folder. Trackio fixes its
  folder (`TRACKIO_DIR`) when it is first imported, so a process keeps the folder of its first
  tracked run: for the command line that is `<output_dir>/logs/trackio`; the app sets one folder for
  all its runs at start-up. Nothing is synced to a Space: the project stays on this machine
  (`trackio show --project gpt2tune` with the same `TRACKIO_DIR` opens its dashboard).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

LOGS_DIR = "logs"
TRACKIO_PROJECT = "gpt2tune"
PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio"}


def check_available(report_to: str) -> None:
    """Fail before loading anything when the chosen tracker is not installed."""
    package = PACKAGES.get(report_to)
    if package and importlib.util.find_spec(package) is None:
        raise ValueError(f"report_to {report_to} needs the {package} package: pip install 'gpt2tune[{package}]'")


def tensorboard_dir(output_dir) -> Path:
    return Path(output_dir) / LOGS_DIR / "tensorboard"


def trackio_dir(output_dir) -> Path:
    """Where this process's Trackio project lives (chosen here if Trackio has not picked one yet)."""
    if "trackio.utils" in sys.modules:
        return Path(sys.modules["trackio.utils"].TRACKIO_DIR)  # fixed when trackio was imported
    os.environ.setdefault("TRACKIO_DIR", str(Path(output_dir).resolve() / LOGS_DIR / "trackio"))
    return Path(os.environ["TRACKIO_DIR"])


def training_arguments(config) -> dict:
    """The TrainingArguments that switch the chosen tracker on (and keep Trackio local)."""
    if config.report_to == "trackio":
        trackio_dir(config.output_dir)  # before the Trainer imports trackio
        # No Space to sync to or freeze: the project stays in the local folder.
        return dict(report_to="trackio", project=TRACKIO_PROJECT, run_name=Path(config.output_dir).name,
                    trackio_space_id=None, trackio_static_space_id=False)
    return dict(report_to=config.report_to)


def attach(trainer, config) -> None:
    """Point the Trainer's TensorBoard writer into the run folder (by default it would write under
    checkpoints/runs/<time_host>, which checkpoint rotation does not touch but nobody would look in)."""
    if config.report_to != "tensorboard":
        return
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(tensorboard_dir(config.output_dir))


def dashboard(config) -> dict | None:
    """Where the run's logs are and the command that opens their dashboard (for metrics.json and the app)."""
    if config.report_to == "tensorboard":
        folder = tensorboard_dir(config.output_dir)
        return {"report_to": "tensorboard", "logs": str(folder), "command": f"tensorboard --logdir {folder}"}
    if config.report_to == "trackio":
        folder = trackio_dir(config.output_dir)
        return {"report_to": "trackio", "logs": str(folder), "project": TRACKIO_PROJECT,
                "run": Path(config.output_dir).name,
                "command": f"TRACKIO_DIR={folder} trackio show --project {TRACKIO_PROJECT}"}
    return None
