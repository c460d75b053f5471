"""Where bundled assets live and where the app may write."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Assets ship beside the package in a source checkout and inside it in a wheel.
ASSETS_DIR = next(
    (p for p in (PACKAGE_DIR.parent / "assets", PACKAGE_DIR / "assets") if p.is_dir()),
    PACKAGE_DIR.parent / "assets",
)
TOKENIZER_DIR = ASSETS_DIR / "gpt2-tokenizer"
SAMPLE_CSV = ASSETS_DIR / "sample_qa.csv"


PERSISTENT_DIR_ENV = "GPT2TUNE_PERSISTENT_DIR"  # where a Space's persistent storage is; tests point it elsewhere
SPACE_PERSISTENT_DIR = "/data"  # what a Hugging Face Space mounts when persistent storage is enabled


def on_space() -> bool:
    """Running as a Hugging Face Space: the platform sets SPACE_ID."""
    return bool(os.environ.get("SPACE_ID"))


def persistent_dir() -> Path | None:
    """The Space's persistent storage when it has one (and it is writable), else None.

    Only a Space's storage counts: elsewhere `/data` may be anybody's folder.
    """
    if not on_space():
        return None
    root = Path(os.environ.get(PERSISTENT_DIR_ENV) or SPACE_PERSISTENT_DIR)
    return root if root.is_dir() and os.access(root, os.W_OK) else None


def ephemeral_storage_note() -> str | None:
    """What to tell a Space's owner when runs will not survive a restart (None when they will)."""
    if not on_space() or os.environ.get("GPT2TUNE_HOME") or persistent_dir() is not None:
        return None
    return ("This Space has no persistent storage: trained runs are lost when it restarts. Enable persistent "
            f"storage in the Space's settings to keep them under {SPACE_PERSISTENT_DIR}/gpt2tune.")


def work_dir() -> Path:
    """The one folder the app writes under (runs, uploads, the tiny model).

    GPT2TUNE_HOME overrides it. On a Hugging Face Space with persistent storage it is
    `/data/gpt2tune`, so runs survive restarts; on a Space without, the app's own folder is
    ephemeral anyway (and may be read-only), so a temporary folder is used. Elsewhere it is
    `gpt2tune_work` in the current folder.
    """
    home = os.environ.get("GPT2TUNE_HOME")
    persistent = persistent_dir()
    if home:
        root = Path(home)
    elif persistent is not None:
        root = persistent / "gpt2tune"
    elif on_space():
        root = Path(tempfile.gettempdir()) / "gpt2tune"
    else:
        root = Path("gpt2tune_work")
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def inside(root: Path, relative: str) -> Path:
    """Resolve a user-given relative path under `root`, refusing `../` and absolute escapes."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ValueError(f"path {relative!r} leaves the working folder")
    return candidate


def match_weights_mode(folder: Path) -> None:
    """Give the weights the permissions of the config beside them.

    safetensors creates its files private (0600) whatever the umask, so a model folder shared with a
    group or served by another user would hold everything but its weights.
    """
    reference = Path(folder) / "config.json"
    if not reference.is_file():
        return
    mode = reference.stat().st_mode & 0o777
    for weights in Path(folder).glob("*.safetensors"):
        weights.chmod(mode)


def mtime(path: Path) -> float:
    """A file's modification time, 0.0 when it has just gone: folders are listed while another job
    renames its *.tmp files into place or prunes old entries."""
    try:
        return Path(path).stat().st_mtime
    except FileNotFoundError:
        return 0.0
