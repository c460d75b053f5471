"""The gate: every value a caller of the app sends passes here before anything reads it.

Anyone who can open a public app can call its endpoints with any values, so each kind of input has
one function that decides what the server may do with it, for whom:

- a data file (`data_file`): an upload Gradio stored for this app, or the bundled sample;
- a Hub dataset (`hub_dataset`): a Hub id only (never a folder on the server), read without the
  server's token for anyone but the owner, downloaded inside the working folder and removed once read;
- a model (`model_reference`): a Hub id (public only, for anyone but the owner, while the server
  holds a token) or a folder inside the working folder;
- a run name (`run_name`) and a run's settings (`bounded_config`): a plain folder name under runs/;
  on a public app a visitor's run is bounded in steps, minutes and disk;
- a run to stop or resume (`check_may_control`): on a public app, only the visitor that started it.

Who may train, stop and publish at all is `hub.access` (the owner, the Space defaults). No gradio
here: the UI hands over the caller (`hub.access.Caller`), the upload folder and the browser's key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gpt2tune.hub.access import Caller, is_owner, may_use_server_token, public_app

# Visitor runs on a public app (owner-set; the defaults are what a free CPU Space serves in minutes)
VISITOR_MAX_STEPS_ENV = "GPT2TUNE_VISITOR_MAX_STEPS"  # optimizer steps a visitor's run trains at most
VISITOR_MAX_MINUTES_ENV = "GPT2TUNE_VISITOR_MAX_MINUTES"  # minutes each start or resume trains at most
VISITOR_DISK_MB_ENV = "GPT2TUNE_VISITOR_DISK_MB"  # the working folder (runs and all): no new visitor run above it
DEFAULT_VISITOR_MAX_STEPS = 300
DEFAULT_VISITOR_MAX_MINUTES = 15.0
DEFAULT_VISITOR_DISK_MB = 5_000
VISITOR_CHECKPOINTS = 1  # a visitor's run keeps one checkpoint: its disk is the data, one model, one checkpoint

VISITOR_FILE = "visitor.json"  # in a run folder: the SHA-256 of the key of the browser that started it
MIN_KEY_LENGTH = 16
HUB_DATASETS_DIR = "hub-datasets"  # under the working folder: visitors' Hub datasets, each removed once read


# --- files -----------------------------------------------------------------------------------------
def data_file(file, uploads: str | os.PathLike) -> str:
    """The path of a file a caller gave, if it is one this app may read for them.

    Only an upload Gradio stored for this app (`uploads`, its upload folder) or the bundled sample
    qualifies. Gradio already refuses API inputs outside its upload folder, but not every route into
    a handler goes through that check (static paths, direct calls, apps that embed these handlers),
    so each handler that reads a caller's file asks here first, and a refused path is never opened.
    """
    from gpt2tune.paths import SAMPLE_CSV

    if not file:
        raise ValueError("no data file: upload a CSV (or TSV/JSON/JSONL) or click 'Use the sample dataset'")
    path = getattr(file, "path", file)  # a FileData, or the path a "filepath" component hands over
    if isinstance(path, dict):
        path = path.get("path")
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValueError("the data file is not a file: upload a CSV (or TSV/JSON/JSONL) or use the sample")
    # realpath on both sides: a symlink or `..` inside the upload folder that leads out of it is refused
    real = os.path.realpath(path)
    uploads = os.path.realpath(uploads)
    if real != os.path.realpath(SAMPLE_CSV) and os.path.commonpath([real, uploads]) != uploads:
        raise ValueError(f"{Path(path).name!r} was not uploaded to this app: only files uploaded here "
                         "and the bundled sample are read")
    return str(path)


def data_source(file, dataset, uploads: str | os.PathLike) -> str:
    """`data_file`, or, with a Hub dataset named, the sample in its place: the dataset is what is read
    then (after `hub_dataset` passed it), and an empty file box is fine."""
    from gpt2tune.paths import SAMPLE_CSV

    if not file and _text(dataset):
        return str(SAMPLE_CSV)
    return data_file(file, uploads)


# --- Hub datasets ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubDataset:
    """A Hub dataset a caller named, as the gate lets it be read."""

    id: str
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    token: bool = True  # False: read it as an anonymous user would (no Authorization header)
    cache_dir: str | None = None  # None: the datasets library's own cache

    def settings(self) -> dict:
        """The TuneConfig fields that read it."""
        return {"dataset": self.id, "dataset_config": self.config, "dataset_split": self.split,
                "dataset_revision": self.revision, "hub_token": self.token, "hub_cache_dir": self.cache_dir}


# `datasets.load_dataset` takes its first argument as a Hub id, a folder, a file, or a packaged
# builder ("csv", "json", ...); only the first is a caller's to name.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
_SPLIT_OR_CONFIG = re.compile(r"^[A-Za-z0-9_.\-\[\]:%+]{1,100}$")  # what load_dataset reads as a name or split
_REVISION = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")  # a branch, tag or commit (refs/pr/1)


def hub_dataset(dataset, config=None, split=None, revision=None, *, caller: Caller) -> HubDataset | None:
    """The Hub dataset to read, or None when none is named. Refused in one line, before any read:
    anything that is not `name` or `user/name`, a name that exists as a file or folder on the server
    (load_dataset would read it from disk), or a packaged builder's name. Anyone but the owner reads
    with no token (the owner's private and gated datasets stay out of reach), downloading into the
    working folder and removing the download once read."""
    from gpt2tune.data.tables import short
    from gpt2tune.paths import work_dir

    text = _text(dataset)
    if not text:
        return None
    not_an_id = f"dataset {short(text, 80)!r} is not a Hub dataset id; write it as user/name"
    if not _HUB_ID.match(text) or ".." in text or "--" in text or _on_disk(text) or _packaged_builder(text):
        raise ValueError(not_an_id)
    for name, value, pattern in (("config", config, _SPLIT_OR_CONFIG), ("split", split, _SPLIT_OR_CONFIG),
                                 ("revision", revision, _REVISION)):
        value = _text(value)
        if value and (not pattern.match(value) or ".." in value or value.startswith((".", "/"))):
            raise ValueError(f"dataset {name} {short(value, 60)!r} is not valid: letters, digits, '.', '_', '-'")
    if may_use_server_token(caller):
        return HubDataset(text, _text(config), _text(split), _text(revision))
    return HubDataset(text, _text(config), _text(split), _text(revision), token=False,
                      cache_dir=str(work_dir() / HUB_DATASETS_DIR))


def _on_disk(text: str) -> bool:
    """load_dataset reads a name that exists relative to the process's current folder from disk;
    names of what the app keeps in its working folder (runs, uploads) are refused as well."""
    from gpt2tune.paths import work_dir

    return any(os.path.lexists(candidate) for candidate in (Path(text), work_dir() / text))


def _packaged_builder(text: str) -> bool:
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return text.lower() in _PACKAGED_DATASETS_MODULES


# --- models ----------------------------------------------------------------------------------------
def model_reference(text, what: str = "model", *, caller: Caller, default: str | None = None) -> str:
    """A Hub id as typed, or a folder inside the working folder (or the configured base model).

    Folders elsewhere on the server are refused so that a public app can't be pointed at them; while
    the server holds a token, anyone but the owner may name public Hub models only."""
    from gpt2tune.paths import inside, work_dir
    from gpt2tune.references import is_repo_id, looks_like_path

    text = _text(text) or ""
    if not text:
        raise ValueError(f"the {what} is empty: type a Hub id such as gpt2 or user/name, or a folder")
    if default and text == default:
        return text
    root = work_dir()
    # "user/name" is a Hub id unless such a folder exists in the working folder
    if looks_like_path(text) or (root / text).is_dir():
        try:
            folder = inside(root, os.path.expanduser(text))
        except ValueError:
            raise ValueError(f"{what} folder {text!r} is outside the working folder: use a folder inside it") from None
        if not folder.is_dir():
            raise ValueError(f"{what} folder {text!r} does not exist in the working folder")
        return str(folder)
    if not is_repo_id(text):
        raise ValueError(f"{what} {text!r} is neither a Hub id (name or user/name) nor a folder")
    from huggingface_hub import get_token

    from gpt2tune.hub.access import check_public_model

    if get_token() and not may_use_server_token(caller):
        check_public_model(text, what)
    return text


# --- runs ------------------------------------------------------------------------------------------
def run_name(name) -> str:
    """A run's name: a plain folder name under runs/ (`runs.store.RUN_NAME_PATTERN`)."""
    from gpt2tune.runs.store import RUN_NAME_PATTERN

    from gpt2tune.data.tables import short

    name = _text(name) or ""
    if not RUN_NAME_PATTERN.match(name):
        raise ValueError(f"run name {short(name, 70)!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return name


def visitor_bounded(caller: Caller) -> bool:
    """On a public app, a run anyone but the owner starts is a visitor's: bounded, and theirs alone."""
    return public_app() and not is_owner(caller)


def limits() -> tuple[int, float, int]:
    """(steps, minutes per start, MB of the working folder) that bound visitors' runs, as the owner set them."""
    return (_env_number(VISITOR_MAX_STEPS_ENV, DEFAULT_VISITOR_MAX_STEPS, int),
            _env_number(VISITOR_MAX_MINUTES_ENV, DEFAULT_VISITOR_MAX_MINUTES, float),
            _env_number(VISITOR_DISK_MB_ENV, DEFAULT_VISITOR_DISK_MB, int))


def bounded_config(config, caller: Caller):
    """The TuneConfig a caller's Start trains with: for a visitor of a public app, within the owner's
    bounds on steps, minutes and checkpoints (the tighter of theirs and the visitor's), after refusing
    a start while the working folder is over its disk bound."""
    if not visitor_bounded(caller):
        return config
    steps, minutes, disk_mb = limits()
    used = _work_disk_mb()
    if used >= disk_mb:
        raise ValueError(f"this app's working folder uses {used:,.0f} MB, its limit for visitors' runs is "
                         f"{disk_mb:,} MB ({VISITOR_DISK_MB_ENV}): no new run until the owner removes some")
    return dataclasses.replace(
        config,
        step_limit=min(config.step_limit or steps, steps),
        max_minutes=min(config.max_minutes or minutes, minutes),
        save_total_limit=min(config.save_total_limit, VISITOR_CHECKPOINTS),
    )


def record_starter(folder: Path, key) -> None:
    """Remember (as a hash) the browser key that started a visitor's run in its folder."""
    key = _key(key)
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / VISITOR_FILE).write_text(json.dumps({"key_sha256": _digest(key)}) + "\n")


def check_visitor_key(key) -> None:
    """A visitor's Start needs the key its browser keeps (the page makes one; API callers send theirs)."""
    _key(key)


def check_may_control(folder: Path | None, caller: Caller, key, action: str) -> None:
    """On a public app a visitor stops or resumes only the runs its own browser started (the owner, any)."""
    if folder is None or not visitor_bounded(caller):
        return
    try:
        saved = json.loads((Path(folder) / VISITOR_FILE).read_text()).get("key_sha256")
    except (OSError, ValueError, AttributeError):
        saved = None
    given = _text(key)
    if not saved or not given or _digest(given) != saved:
        raise ValueError(f"you may {action} only runs started from this browser: run {Path(folder).name!r} "
                         "was started by someone else")


def discard_if_untrained(folder) -> bool:
    """A visitor's new run that failed before its first step leaves no folder (its data copy, its
    record): failed starts must not fill the disk. True when it was removed."""
    import shutil

    from gpt2tune.runs import artifacts, record

    folder = Path(folder)
    if not (folder / VISITOR_FILE).is_file():
        return False
    saved = record.read_record(folder) or {}
    if int(saved.get("step") or 0) > 0 or artifacts.latest_checkpoint(folder) is not None or artifacts.has_model(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def _key(key) -> str:
    key = _text(key) or ""
    if len(key) < MIN_KEY_LENGTH or len(key) > 256:
        raise ValueError(f"no visitor key: this app keeps one in the browser to know your runs (API callers: "
                         f"pass visitor_key, {MIN_KEY_LENGTH}-256 characters of your choosing)")
    return key


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _work_disk_mb() -> float:
    from gpt2tune.paths import work_dir

    total = 0
    for dirpath, _, files in os.walk(work_dir()):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed while counting (a pruned checkpoint)
                pass
    return total / 2**20


# --- helpers ---------------------------------------------------------------------------------------
def _text(value) -> str | None:
    return str(value).strip() or None if value is not None else None


def _env_number(name: str, default, kind):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(float(text))
    except ValueError:
        raise ValueError(f"{name} must be a number (got {text!r})") from None
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0 (got {text!r})")
    return value
