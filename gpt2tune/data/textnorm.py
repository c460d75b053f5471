"""The normalisation rule for one text: the definition behind every duplicate, leakage and
nearest-example count (gpt2tune.data.normalise applies it to whole columns).

Standard library only: a demo Space copies this file as it is (gpt2tune.demo), so the demo finds
nearest training questions by the same rule as the training run.
"""

from __future__ import annotations

import re
import unicodedata

_PUNCTUATION = re.compile(r"[^\w\s]")


def normalise_text(text: str) -> str:
    """Unicode compatibility forms folded (NFKC), case folded, punctuation dropped, runs of whitespace
    as one space: "What is X?" and "what  is x" are the same text."""
    # str.split() is the whitespace rule of \s, and faster than a second regex on a million rows
    return " ".join(_PUNCTUATION.sub("", unicodedata.normalize("NFKC", text).casefold()).split())
