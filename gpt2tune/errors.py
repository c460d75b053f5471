"""Error text fit for one line: what the CLI prints and the app shows, never a traceback."""

from __future__ import annotations


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first non-empty line of an error's message (or its type when it says nothing)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text[:limit] if limit else text


class RunFailed(Exception):
    """A run that could not finish, for a reason its message fully explains (diverged, disk full).

    Not a ValueError: the settings were valid, the run failed (the CLI exits 1, not 2); but like a
    ValueError it is shown as its one line, without a type name or a traceback.
    """


class NetworkError(ValueError):
    """A one-line failure that is not the user's input: the Hub or the network did not answer.

    A ValueError, so every place that shows a ValueError as its one line shows this one the same way;
    the CLI exits with 1 for it (a failure) rather than 2 (bad input or settings).
    """
