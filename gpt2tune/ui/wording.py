"""The core's one-line messages in the app's words.

The core words a remedy for the command line (`--max-length 256`, `--offline-fallback`); the app has
boxes and buttons instead. Rather than a second copy of every message, the few CLI idioms are
rewritten here: a flag becomes the box that sets it and the tab it is on, a message that starts with a
setting's field name written as code (`learning_rate must be ...`) starts with its box's label.
"""

from __future__ import annotations

import dataclasses
import re

from gpt2tune.config import GenerationSettings, TuneConfig
from gpt2tune.ui.fields import label

# Where each setting's box is; everything else of TuneConfig is on the Train tab.
DATA_TAB = ("csv", "question_column", "answer_column", "eval_fraction", "seed", "max_length",
            "dataset", "dataset_config", "dataset_split", "dataset_revision")
CHECKS_TAB = ("base_model", "device", "precision", "allow_pickle")
ALIASES = {"lr": "learning_rate", "data": "csv"}  # the CLI's short flags (gpt2tune.cli.ALIASES)
BUTTONS = {"resume": "the Resume button"}

PHRASES = (  # whole CLI phrases with no box of their own, before the flag-by-flag rewrite
    (re.compile(r"(?:pass )?--offline-fallback(?: \(train, check\))?(?: to use the offline tiny model)?"),
     "press 'Offline tiny model' on the Checks tab"),
    (re.compile(r" \(--allow-pickle, allow_pickle=True\)"), " ('Allow pickle' on the Checks tab)"),
    (re.compile(r"\(see: gpt2tune \w+ --help\)"), ""),
)
FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: (\d[\w.+-]*))?")  # a flag, and the value a remedy gives it


def _fields() -> dict[str, str]:
    """Field name → where its box is, for every setting the app has a box for."""
    where = {f.name: "Train tab" for f in dataclasses.fields(TuneConfig)}
    where.update({name: "Data tab" for name in DATA_TAB})
    where.update({name: "Checks tab" for name in CHECKS_TAB})
    where.update({f.name: "Generate tab" for f in dataclasses.fields(GenerationSettings)})
    where.pop("output_dir", None)  # the Run name sets it
    return where


WHERE = _fields()


def box(name: str) -> str:
    """'Label' on the X tab: how the app names the box of a setting."""
    return f"'{label(name)}' on the {WHERE[name]}"


def app_words(message: str) -> str:
    """`message` with its CLI flags and Python argument names replaced by the app's boxes and buttons."""
    for pattern, words in PHRASES:
        message = pattern.sub(words, message)

    def flag(match: re.Match) -> str:
        name = match.group(1).replace("-", "_")
        name = ALIASES.get(name, name)
        if name in BUTTONS:
            return BUTTONS[name]
        if name not in WHERE:
            return match.group(0)
        return f"'{label(name)}' {match.group(2)}" if match.group(2) else box(name)

    message = FLAG.sub(flag, message)
    # "learning_rate must be greater than 0": a field name written as code (one word such as "seed"
    # or "dataset" already reads as the box it names)
    first = re.match(r"(\w+_\w+)(?=[ :])", message)
    if first and first.group(1) in WHERE:
        message = label(first.group(1)) + message[first.end():]
    return message.strip()
