"""Error text fit for one line: what the CLI prints and the app shows, never a traceback."""

from __future__ import annotations


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first non-empty line of an error's message (or its type when it says nothing)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text[:limit] if limit else text
