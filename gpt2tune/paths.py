"""Where bundled assets live and where the app may write."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Assets ship beside the package in a source checkout and inside it in a wheel.
ASSETS_DIR = next(
    (p for p in (PACKAGE_DIR.parent / "assets", PACKAGE_DIR / "assets") if p.is_dir()),
    PACKAGE_DIR.parent / "assets",
)
TOKENIZER_DIR = ASSETS_DIR / "gpt2-tokenizer"
SAMPLE_CSV = ASSETS_DIR / "sample_qa.csv"


def work_dir() -> Path:
    """The one folder the app writes under (runs, uploads, the tiny model).

    GPT2TUNE_HOME overrides it; on a Hugging Face Space (SPACE_ID is set) the app's folder is
    ephemeral anyway, so a relative `gpt2tune_work` there is the natural home.
    """
    root = Path(os.environ.get("GPT2TUNE_HOME", "gpt2tune_work")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def inside(root: Path, relative: str) -> Path:
    """Resolve a user-given relative path under `root`, refusing `../` and absolute escapes."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ValueError(f"path {relative!r} leaves the working folder {root}")
    return candidate
