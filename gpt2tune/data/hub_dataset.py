"""Read a dataset from the Hugging Face Hub (`user/name`, optional config, split and revision) into
the same raw table of strings a file gives, so column mapping, cleaning and the report are shared.

Rows are numbered by their index in the split, as the Hub's dataset viewer shows them.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from gpt2tune.data.tables import RawTable, check_width, short
from gpt2tune.errors import NetworkError, first_line
from gpt2tune.model import hub_unreachable_message

# owner/name or a bare canonical name; dots, dashes and underscores as the Hub allows
DATASET_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
FORMAT = "hub dataset"


def read_hub_table(dataset_id: str, config_name: str | None = None, split: str | None = None,
                   revision: str | None = None, token: bool = True, cache_dir: str | None = None) -> RawTable:
    """Download (or reuse the cached copy of) one split and return it as strings.

    Without `split` the "train" split is used, or the only split when there is one. `token=False`
    reads as an anonymous user (no token is sent). With `cache_dir` the download goes into a folder
    of its own there, removed once the rows are read (the app's visitors: nothing of theirs piles
    up); without, into the datasets library's lasting cache.
    Every failure is a one-line ValueError naming the dataset.
    """
    dataset_id = (dataset_id or "").strip()
    if not DATASET_ID.match(dataset_id) or ".." in dataset_id:
        raise ValueError(f"dataset {short(dataset_id, 80)!r} is not a Hub dataset id; write it as user/name")
    scratch = Path(cache_dir) / uuid.uuid4().hex if cache_dir else None
    try:
        splits = _load_splits(dataset_id, config_name or None, split or None, revision or None, token,
                              str(scratch) if scratch else None)
        name = split or _default_split(dataset_id, list(splits))
        if name not in splits:
            raise ValueError(f"dataset {dataset_id!r} has no split {name!r} (splits: {', '.join(splits)})")
        return _as_table(splits[name], _source(dataset_id, config_name, name))  # copies the rows out
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def fingerprint(frame: pd.DataFrame, source: str, dataset_id: str, config_name: str | None,
                revision: str | None) -> dict:
    """Which data a model saw: the dataset id, config, split (in `source`, as read) and revision,
    its rows after cleaning and a SHA-256 of those rows (a branch may point at another commit later)."""
    import hashlib

    content = frame.to_csv(index=False).encode("utf-8")
    # `source` ends in "split <name>" (see _source); Hub split names have no spaces
    return {"file": source, "hub_dataset": dataset_id, "config": config_name, "split": source.rsplit(" ", 1)[-1],
            "revision": revision, "rows": len(frame), "sha256": hashlib.sha256(content).hexdigest()}


def _load_splits(dataset_id: str, config_name, split, revision, token: bool, cache_dir: str | None) -> dict:
    import datasets
    from huggingface_hub import constants

    from gpt2tune.model import hub_unreachable_reason

    # Offline, huggingface_hub retries a dead network for about 30 s: ask once, and when the Hub
    # does not answer, read the copy a previous load left in the cache (as HF_HUB_OFFLINE=1 does).
    offline = constants.HF_HUB_OFFLINE or hub_unreachable_reason() is not None
    try:
        with _offline_mode(offline), _hub_files_in(cache_dir):
            # token None: the library's own (HF_TOKEN, the cached login); False: none at all
            loaded = datasets.load_dataset(dataset_id, config_name, split=split, revision=revision,
                                           token=None if token else False, cache_dir=cache_dir or None)
    except (datasets.exceptions.DatasetNotFoundError, FileNotFoundError, ConnectionError) as error:
        if offline:
            raise NetworkError(hub_unreachable_message(f"dataset {dataset_id!r}", "dataset")) from None
        raise ValueError(f"could not load dataset {dataset_id!r}: {_one_line(error)}") from None
    except (ValueError, OSError, datasets.exceptions.DatasetsError) as error:
        # an unknown config or split, a file `datasets` cannot parse, a network failure midway
        raise ValueError(f"could not load dataset {dataset_id!r}: {_one_line(error)}") from None
    if isinstance(loaded, datasets.Dataset):
        return {split: loaded}
    return dict(loaded)


_offline_lock = threading.Lock()


@contextmanager
def _offline_mode(offline: bool):
    """`datasets` in offline mode (cache only) for this load. Its switch is a module global read at
    call time, so loads take turns while it may be flipped."""
    import datasets

    with _offline_lock:
        saved = datasets.config.HF_HUB_OFFLINE
        datasets.config.HF_HUB_OFFLINE = saved or offline
        try:
            yield
        finally:
            datasets.config.HF_HUB_OFFLINE = saved


@contextmanager
def _hub_files_in(cache_dir: str | None):
    """datasets fetches a dataset's files with huggingface_hub, which it gives no cache folder: they
    would land in HF_HUB_CACHE whatever `cache_dir` says. For a load with its own `cache_dir` (the
    app's visitors), huggingface_hub's cache folders point under it while the load runs (loads take
    turns, see `_offline_mode`); a model another thread downloads meanwhile lands there too (inside
    the same folder) and is fetched again later."""
    if not cache_dir:
        yield
        return
    from huggingface_hub import constants

    saved = constants.HF_HUB_CACHE, constants.HF_XET_CACHE
    constants.HF_HUB_CACHE, constants.HF_XET_CACHE = str(Path(cache_dir) / "hub"), str(Path(cache_dir) / "xet")
    try:
        yield
    finally:
        constants.HF_HUB_CACHE, constants.HF_XET_CACHE = saved


def _one_line(error: BaseException) -> str:
    return " ".join(first_line(error).split())[:300]


def _default_split(dataset_id: str, names: list[str]) -> str:
    if "train" in names:
        return "train"
    if len(names) == 1:
        return names[0]
    raise ValueError(f"dataset {dataset_id!r} has no 'train' split; choose one of: {', '.join(names)}")


def _source(dataset_id: str, config_name: str | None, split: str) -> str:
    return f"{dataset_id}" + (f" ({config_name})" if config_name else "") + f", split {split}"


def _as_table(dataset, source: str) -> RawTable:
    """Every cell a string as a file would give: text as is, numbers and lists in JSON spelling."""
    check_width(len(dataset.column_names), source)
    header = [str(name) for name in dataset.column_names]
    frame = pd.DataFrame({name: [_cell(value) for value in dataset[name]] for name in dataset.column_names},
                         dtype=object)
    frame.columns = header
    frame = frame.where(frame.notna(), np.nan)
    return RawTable(frame=frame, header=header, row_numbers=np.arange(len(frame)), source=source,
                    file_format=FORMAT, encoding="utf-8", delimiter=None, warnings=[])


def _cell(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
