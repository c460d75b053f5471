"""Disk space: what a run needs before it starts, and one clear line when a write finds the disk full.

Out of space, torch's checkpoint writer fails with `[enforce fail at inline_container.cc:672] .
unexpected pos ...`, safetensors with `IoError(Os { code: 28, ... })` and Python with OSError
ENOSPC. `disk_full_as_one_line` turns any of them into `DiskFull`: the folder, what was being
written, and the space needed against the space free.
"""

from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path

from gpt2tune.errors import RunFailed

MB = 2**20
SLACK_BYTES = 50 * MB  # tokenizer, config, metrics, plot, card, trainer state: small, but not nothing
# What the writers say when the disk is full (torch's zip writer, safetensors' Rust IoError, the OS).
DISK_FULL_MARKERS = ("No space left on device", "unexpected pos", "StorageFull", "code: 28",
                     "Disk quota exceeded", "file write failed")


class DiskFull(RunFailed):
    """A write failed for lack of space; the message names the folder and the space needed."""


def is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    writer_error = isinstance(error, (OSError, RuntimeError)) or type(error).__name__ == "SafetensorError"
    return writer_error and any(marker in str(error) for marker in DISK_FULL_MARKERS)


def checkpoint_bytes(weight_bytes: int) -> int:
    """A resumable checkpoint: the weights plus AdamW's two moments, each the size of the weights."""
    return 3 * weight_bytes


def space_needed(weight_bytes: int, save_total_limit: int, saves_checkpoints: bool,
                 existing_checkpoint_bytes: int = 0) -> int:
    """Bytes a run still needs on top of what its folder already uses.

    The Trainer writes a new checkpoint and then deletes the oldest beyond `save_total_limit`, so at
    its peak the folder holds limit + 1 checkpoints. Checkpoints already there (a resume, or an
    earlier run in the same folder) count towards that peak: rotation deletes them as new ones come,
    so their space is not needed twice. The final model is written beside at most `limit` checkpoints.
    """
    if not saves_checkpoints:
        return weight_bytes + SLACK_BYTES
    checkpoint = checkpoint_bytes(weight_bytes)
    peak = max((save_total_limit + 1) * checkpoint, save_total_limit * checkpoint + weight_bytes)
    return max(0, peak - existing_checkpoint_bytes) + SLACK_BYTES


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (0 when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # rotated away while counting
            pass
    return total


def free_bytes(folder: Path) -> int | None:
    """Free space where `folder` is (or would be created)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full_message(folder: Path, what: str, needed_bytes: int | None) -> str:
    free = free_bytes(folder)
    have = f"{free / MB:.0f} MB free" if free is not None else "free space unknown"
    need = f"about {needed_bytes / MB:.0f} MB needed, " if needed_bytes else ""
    return f"disk full while writing {what} in {folder}: {need}{have}; free some space or choose another folder"


@contextmanager
def disk_full_as_one_line(folder: Path, what: str, needed_bytes: int | None = None, on_full=None):
    """Inside the block, a disk-full error from any writer becomes `DiskFull` with one line.

    `on_full()` runs first, to remove what the failed write left half done (space the user gets back).
    """
    try:
        yield
    except Exception as error:
        if isinstance(error, DiskFull) or not is_disk_full(error):
            raise
        if on_full is not None:
            on_full()
        raise DiskFull(disk_full_message(folder, what, needed_bytes)) from error
