"""An on-disk cache of prepared (tokenized, packed) datasets, so a rerun on the same data starts at once.

An entry is a folder named by a hash of everything that shapes the rows: the question/answer text
of both splits (hence the CSV content, the columns picked and the split), the tokenizer's full
definition, max_length, the prompt template, answers_only, pack and the preparation code's version.
Change any of them and the key changes; nothing is ever invalidated by hand. Earlier stages are kept
the same way in hidden folders inside: `.tables` a file as the loader cleaned it (`source_key`: its
bytes and the loader's code), `.tokens` the token ids of a whole cleaned file (`encoded_key`: the text
and the tokenizer only, so runs that differ in max_length, split or packing share one tokenizer pass),
`.reports` the dataset report (`report_key`). Keys include the code that made the entry.

Two processes preparing the same data (e.g. ranks of a multi-GPU run) take a file lock: the first
builds, the others wait and read. An entry appears by an atomic rename, so a crash never leaves a
half-written entry that looks complete. Only the newest KEEP_ENTRIES entries are kept.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from pathlib import Path

from gpt2tune.paths import mtime

PREP_VERSION = "3"  # bump when the layout or content of prepared rows changes (3: special-token text as plain text)
KEEP_ENTRIES = 4
CACHE_FOLDER_NAME = ".prep-cache"  # hidden: it sits beside run folders and is not a run


def default_cache_dir(output_dir: str | Path) -> Path:
    """Beside the run's output folder, so runs that share a parent share their cache."""
    return Path(output_dir).resolve().parent / CACHE_FOLDER_NAME


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's whole definition (vocabulary, merges, normalizer, added tokens)."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:  # a Python tokenizer: its vocabulary is its definition
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(f"{type(tokenizer).__name__}|{tokenizer.eos_token_id}".encode())
    return digest.hexdigest()


def frame_fingerprint(frame) -> str:
    """A hash of the question and answer text, row by row, in order (pandas hashes in C: ~1 s per million rows)."""
    import pandas as pd

    digest = hashlib.sha256(f"{len(frame)}|".encode())
    if len(frame):
        pairs = frame[["question", "answer"]]
        for start in range(0, len(pairs), 100_000):  # row hashes are independent: slices bound the memory
            digest.update(pd.util.hash_pandas_object(pairs.iloc[start:start + 100_000], index=False).to_numpy().tobytes())
    return digest.hexdigest()


def prep_key(frames, tokenizer, max_length: int, answers_only: bool, pack: bool, overlong: str = "truncate",
             fingerprint: str | None = None) -> str:
    """`fingerprint`: one that already names the frames' content (a cached file and its split), so
    that a million rows are not hashed again."""
    from gpt2tune.data.prompt import template_description

    parts = [PREP_VERSION, tokenizer_fingerprint(tokenizer), template_description(),
             f"max_length={max_length}", f"answers_only={answers_only}", f"pack={pack}"]
    if overlong != "truncate":  # the default leaves keys (and caches) of earlier versions valid
        parts.append(f"overlong={overlong}")
    parts += [fingerprint] if fingerprint else [frame_fingerprint(frame) for frame in frames]
    return _key([*parts, code_fingerprint(*PREP_MODULES)])


def encoded_key(frame, tokenizer, fingerprint: str | None = None) -> str:
    """Key of a frame's token ids (`prep.encode_frame`): its text, the tokenizer and the template only, so
    runs that differ in max_length, split or packing share one tokenizer pass."""
    from gpt2tune.data.prompt import template_description

    return _key([PREP_VERSION, "encoded", tokenizer_fingerprint(tokenizer), template_description(),
                 fingerprint or frame_fingerprint(frame), code_fingerprint(*PREP_MODULES)])


def source_key(path, *options) -> str:
    """Key of a file as the loader reads and cleans it: its bytes, the loader's options and the loader's
    own code (so a changed cleaning rule never serves an old result)."""
    from gpt2tune.data.tables import file_sha256

    return _key(["source", file_sha256(path), *map(repr, options), code_fingerprint(*LOADER_MODULES)])


def report_key(fingerprint: str, tokenizer, *options) -> str:
    """Key of a dataset report: the data, the tokenizer and template, the options, the report's code."""
    from gpt2tune.data.prompt import template_description

    return _key(["report", fingerprint, tokenizer_fingerprint(tokenizer), template_description(),
                 *map(repr, options), code_fingerprint(*REPORT_MODULES)])


# the gpt2tune.data modules whose code makes each kind of entry
LOADER_MODULES = ("tables", "load", "normalise", "content", "answers")
REPORT_MODULES = ("report", "length", "normalise", "content", "prep", "prompt")
PREP_MODULES = ("prep", "prompt", "answers")


@functools.cache
def code_fingerprint(*modules: str) -> str:
    digest = hashlib.sha256()
    for name in modules:
        digest.update((Path(__file__).parent / f"{name}.py").read_bytes())
    return digest.hexdigest()


def _key(parts) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def cached(root: Path, key: str, make, save, read, read_back: bool = False):
    """`make()` once, kept by `save(value, folder)` in the entry for `key`; later calls `read(folder)`.

    A cache that cannot be written (a full or read-only disk, a value it cannot store) costs the cache,
    not the caller: the value made is returned all the same. `read_back`: once saved, the value made is
    dropped and the entry read, so a first run holds exactly what every later run reads (a cleaned
    table as the file stores it, not as the loader happened to build it).
    """
    made = []

    def build(folder: Path) -> None:
        made.append(make())
        try:
            save(made[0], folder)
        except OSError:
            raise
        except Exception as error:  # e.g. Arrow refusing a column name: the entry is simply not kept
            raise OSError(f"not cached: {error}") from error

    try:
        folder, _ = fetch_or_build(Path(root), key, build)
    except OSError:
        return made[0] if made else make()
    if made and read_back:
        made.clear()
    return made[0] if made else read(folder)


def fetch_or_build(root: Path, key: str, build) -> tuple[Path, bool]:
    """The entry folder for `key` and whether it was already there; `build(folder)` fills a new one."""
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    with FileLock(str(root / f"{key}.lock")):
        if entry.is_dir():
            os.utime(entry)  # recently used: the last to be pruned
            return entry, True
        staging = root / f".building-{key}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            build(staging)
            os.replace(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _prune(root, keep=entry)
    return entry, False


def _prune(root: Path, keep: Path) -> None:
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=mtime, reverse=True)
    for old in entries[KEEP_ENTRIES:]:
        if old != keep and time.time() - mtime(old) > 60:  # never one another process just wrote
            shutil.rmtree(old, ignore_errors=True)
            (root / f"{old.name}.lock").unlink(missing_ok=True)
