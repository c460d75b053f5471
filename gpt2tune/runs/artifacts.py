"""What a run leaves in its output folder, written so a crash never leaves a complete-looking fake.

Layout of output_dir:
  model.safetensors, config.json, generation_config.json, tokenizer files   (loadable by transformers)
  gpt2tune_config.json   the run's TuneConfig as asked, and under "resolved" what it made of it (runs.resolved)
  metrics.json           train_runtime, train_real_tokens, train_loss, eval_loss, perplexity, ...
  loss_history.json      every logged train/eval point (the best eval marked)
  probes.json            the probe questions' answers at every eval (when probes are set)
  samples.json           a few eval questions with reference and generated answers (and nearest training example)
  nearest_index.npz      the training questions and answers, indexed for the nearest example (data.nearest)
  loss.png, README.md    the loss plot and the model card (pushed with the model)
  checkpoints/           resumable Trainer checkpoints
  logs/                  TensorBoard event files or the Trackio project (with report_to)

A LoRA run (method lora) saves adapter_model.safetensors + adapter_config.json instead of
model.safetensors + config.json, and with merge_lora a complete model folder in merged/.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gpt2tune import paths

CONFIG_FILE = "gpt2tune_config.json"
RUN_FILE = "run.json"  # the run's own record (runs.record)
METRICS_FILE = "metrics.json"
HISTORY_FILE = "loss_history.json"
CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "model.safetensors"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
MERGED_DIR = "merged"
# What says how the folder loads: a new run's files replace all of them, of either kind.
MODEL_FILES = (WEIGHTS_FILE, ADAPTER_WEIGHTS_FILE, "config.json", ADAPTER_CONFIG_FILE)


def has_model(folder) -> bool:
    """A complete model: full weights with their config, or LoRA adapters with theirs."""
    folder = Path(folder)
    return ((folder / WEIGHTS_FILE).exists() and (folder / "config.json").exists()) or (
        (folder / ADAPTER_WEIGHTS_FILE).exists() and (folder / ADAPTER_CONFIG_FILE).exists())


def weights_file(folder) -> Path:
    """The file that changes when the folder's model does (the adapters' for a LoRA run)."""
    folder = Path(folder)
    return folder / (ADAPTER_WEIGHTS_FILE if (folder / ADAPTER_CONFIG_FILE).exists() else WEIGHTS_FILE)


def write_json(path: Path, payload) -> None:
    """Atomic: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def loss_points(log_history: list[dict]) -> list[dict]:
    """The train/eval loss entries of a Trainer log history, trimmed to what a curve needs."""
    keys = ("step", "epoch", "loss", "eval_loss", "learning_rate")
    return [{k: entry[k] for k in keys if k in entry} for entry in log_history if "loss" in entry or "eval_loss" in entry]


def publish_folder(staging: Path, output_dir: Path) -> None:
    """Move every file from `staging` into `output_dir`, the weights last.

    Each move is an atomic rename on the same file system; moving the weights last means that
    whenever `model.safetensors` is there, the config and tokenizer beside it belong to it.
    """
    paths.match_weights_mode(staging)
    files = sorted(staging.iterdir(), key=lambda p: p.name in (WEIGHTS_FILE, ADAPTER_WEIGHTS_FILE))
    # The old run's weights go first: until the new ones land the folder has no weights at all,
    # never old weights beside the new config, tokenizer and metrics. Both kinds go (and their
    # configs), so a LoRA run after a full one in the same folder leaves no stale full weights.
    for name in MODEL_FILES:
        (output_dir / name).unlink(missing_ok=True)
    shutil.rmtree(output_dir / MERGED_DIR, ignore_errors=True)
    for path in files:
        os.replace(path, output_dir / path.name)
    shutil.rmtree(staging, ignore_errors=True)


def check_writable(output_dir: Path, needed_bytes: int) -> None:
    """Fail before training, not after an hour, when the model could not be saved."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"output folder {output_dir} is not writable: {error.strerror or error}") from None
    free = shutil.disk_usage(output_dir).free
    if free < needed_bytes:
        raise ValueError(
            f"not enough disk space in {output_dir}: {free / 2**20:.0f} MB free, "
            f"about {needed_bytes / 2**20:.0f} MB needed for the model and checkpoints"
        )


def remove_incomplete_checkpoints(output_dir: Path) -> None:
    """Delete checkpoints a failed save left without trainer_state.json (never resumable, only in the way)."""
    for path in (Path(output_dir) / CHECKPOINTS_DIR).glob("checkpoint-*"):
        if path.is_dir() and "global_step" not in (read_json(path / "trainer_state.json") or {}):
            shutil.rmtree(path, ignore_errors=True)


def latest_checkpoint(output_dir: Path) -> Path | None:
    folder = Path(output_dir) / CHECKPOINTS_DIR
    candidates = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    # The Trainer writes trainer_state.json last, so a checkpoint killed mid-save has none, or a
    # truncated one that does not parse: either way it is skipped.
    complete = [p for p in candidates if "global_step" in (read_json(p / "trainer_state.json") or {})]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)
