"""Every file this process opens while a test watches for some (an audit hook): the app under test runs
in this process, so a test can prove a refused path was never opened.

    WATCHED.add(str(path)); OPENED.clear()   # ... call the app ...   assert OPENED == []
"""

from __future__ import annotations

import os
import sys

WATCHED: set[str] = set()
OPENED: list[str] = []


def _record_opens(event, args):
    if WATCHED and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if path in WATCHED or os.path.realpath(path) in WATCHED:
            OPENED.append(path)


sys.addaudithook(_record_opens)  # audit hooks can't be removed; this one is idle unless WATCHED is set
