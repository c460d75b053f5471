"""The nearest training example of a run, for every view that shows an answer (`generate
--show-nearest`, the Generate tab, the card's sample answers, a demo Space).

A run writes its index (`data.nearest`) when it saves its model; a run saved before there were
indexes gets one built here from its training split the first time it is asked (then kept in its
folder when the folder is writable). A Hub id or a folder that is no run has no training split:
nothing is claimed for it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gpt2tune.data.nearest import INDEX_FILE, Match, NearestIndex

MAX_ROWS = 200_000  # above this the index (about 1 KB a row) and its build (seconds per 100,000 rows) outgrow a view
LABEL = "nearest training example"  # the one name of it, in the CLI, the app and the card

_cache: dict[str, tuple[float, NearestIndex]] = {}
_lock = threading.Lock()


def build_index(frame, source: dict | None = None) -> NearestIndex | None:
    """The index over a training split's rows (a frame with question and answer columns); None above MAX_ROWS."""
    if len(frame) > MAX_ROWS:
        return None
    return NearestIndex.build(frame["question"].tolist(), frame["answer"].tolist(), source)


def with_nearest(samples: list[dict], index: NearestIndex | None) -> list[dict]:
    """Each sample answer (a dict with a question) with its nearest training example, as the card shows it."""
    if index is None:
        return samples
    out = []
    for sample in samples:
        found = index.nearest(sample["question"])
        out.append({**sample, "nearest": as_dict(found[0]) if found else None})
    return out


def as_dict(match: Match) -> dict:
    return {"question": match.question, "answer": match.answer, "score": round(match.score, 4)}


def run_index(model: str) -> tuple[NearestIndex | None, str]:
    """(the index of the run in folder `model`, "") or (None, why there is none), in one line."""
    path = Path(model) / INDEX_FILE
    if path.is_file():
        return _load(path), ""
    with _lock:
        kept = _cache.get(str(path.resolve()))
    if kept is not None:
        return kept[1], ""
    from gpt2tune.evaluation.provenance import run_record, training_split

    run = run_record(model)
    if run.folder is None:
        return None, f"{Path(model).name or model} is not a run folder (a Hub id or a plain model): no training split"
    csv = Path(run.run.settings.csv).name
    train = training_split(run)
    if train is None:
        return None, f"the run's training file ({csv}) is not here or has changed since it was trained on"
    index = build_index(train, {"file": csv})
    if index is None:
        return None, f"the run trained on {len(train):,} rows: an index is built for at most {MAX_ROWS:,}"
    try:
        index.save(path)
    except OSError:  # a read-only folder: the index lives in this process only
        with _lock:
            _cache[str(path.resolve())] = (-1.0, index)
    return index, ""


def _load(path: Path) -> NearestIndex:
    """An index read once per process, again only when its file was replaced (the run retrained)."""
    key, mtime = str(path.resolve()), path.stat().st_mtime
    with _lock:
        cached = _cache.get(key)
        if cached is None or cached[0] != mtime:
            cached = (mtime, NearestIndex.load(path))
            _cache[key] = cached
        return cached[1]


def describe(index: NearestIndex | None, why: str, question: str) -> list[str]:
    """The nearest training example of `question` as lines (similarity, question, answer), or one line
    saying why there is none: the CLI prints them on one line, the app one under the other."""
    if index is None:
        return [f"none: {why}"]
    found = index.nearest(question)
    if not found:
        return ["none: no training question shares a word part with this one"]
    match = found[0]
    return [f"similarity {match.score:.2f}", f"Q: {match.question}", f"A: {match.answer}"]
