"""What a typed model name is: a local folder, or a Hugging Face Hub repo id.

One definition of each, used by model loading, the app, the model card and the Hub push. Repo ids
are checked by huggingface_hub's own validator, so they follow the Hub's rules as it changes them.
"""

from __future__ import annotations

from pathlib import Path


def looks_like_path(text: str) -> bool:
    """A name that can only be a folder: "user/name" could be either, "a/b/c" or "./x" cannot be an id."""
    return (text.startswith(("/", ".", "~")) or Path(text).is_absolute() or text.count("/") > 1
            or "\\" in text)


def is_repo_id(text: str) -> bool:
    """A valid Hub id, "name" or "namespace/name" (letters, digits, '-', '_', '.'; no '--' or '..')."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hub_validate

    try:
        hub_validate(text)
    except HFValidationError:
        return False
    return bool(text)


def validate_repo_id(repo_id: str | None) -> str:
    """The repo id to create or read, stripped; a namespace ("user/name") is required, as pushing needs one."""
    repo_id = (repo_id or "").strip()
    if "/" not in repo_id or not is_repo_id(repo_id):
        raise ValueError(f"repo id {repo_id!r} is not of the form user/name (letters, digits, '-', '_', '.')")
    return repo_id
