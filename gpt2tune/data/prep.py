"""Turn question/answer rows into training rows: template, tokenize, split, pack.

Packing puts several examples into one row of up to `max_length` tokens. Each example keeps its own
positions (restarting at 0) and a block-diagonal causal mask, so the model computes exactly what it
would on the example alone — without paying for padding (43 % of the compute at max_length 128 on
typical Q&A data, 86 % at 512).

Scale: token ids live in flat numpy arrays (4 bytes a token, not a Python int each), the fast
tokenizer runs on batches of rows, and rows are written to Arrow in chunks. With a `cache_dir`,
the rows go straight to an Arrow file that later runs memory-map instead of tokenizing again.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gpt2tune.data.prompt import format_answer, format_prompt

IGNORE_INDEX = -100  # label value the loss skips
TOKENIZE_CHUNK_ROWS = 20_000  # rows per tokenizer call: big enough for Rust to shine, small enough for RAM
WRITE_CHUNK_ROWS = 20_000  # packed rows per Arrow record batch
TAKE_CHUNK_ROWS = 200_000  # rows per gather when a split takes its token ids


@dataclass
class PrepReport:
    train_examples: int
    eval_examples: int
    truncated: int  # longer than max_length: cut, still trained on
    dropped_no_answer_left: int  # the question alone filled max_length
    train_rows: int
    eval_rows: int
    train_tokens: int  # real (non-pad) tokens in one epoch
    padding_waste_unpacked: float  # what padding every example to max_length would have wasted
    warnings: list[str]
    from_cache: bool = False  # the rows were read from the on-disk cache, not tokenized again
    cache_path: str | None = None
    dropped_overlong: int = 0  # longer than max_length and overlong="drop": left out
    max_length: int = 0  # the length the rows were made for

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"train: {self.train_examples} examples in {self.train_rows} packed rows "
            f"({self.train_tokens} tokens per epoch); eval: {self.eval_examples} examples",
        ]
        if self.from_cache:
            lines.append(f"tokenized data reused from the cache at {self.cache_path}")
        lines += self.warnings
        return "\n".join(lines)


def split_positions(n: int, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, eval) row positions: shuffled with `seed`, `eval_fraction` held out (at least 1 when
    asked for any). Positions, not frames, so what was computed per row once can follow the split."""
    if eval_fraction <= 0 or n < 2:
        return np.arange(n), np.arange(0)
    n_eval = min(n - 1, max(1, round(n * eval_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    return order[n_eval:], order[:n_eval]


def split_frame(frame, eval_fraction: float, seed: int):
    """Shuffle with `seed` and hold out `eval_fraction` of rows (at least 1 when asked for any)."""
    train, held_out = split_positions(len(frame), eval_fraction, seed)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[held_out].reset_index(drop=True)


# --- tokenize -----------------------------------------------------------------------------------


@dataclass
class Examples:
    """Tokenized examples of one split, concatenated: example i is ids[starts[i]:starts[i] + lengths[i]]."""

    ids: np.ndarray  # int32
    labels: np.ndarray  # int32, aligned with ids; IGNORE_INDEX where no loss is taken
    lengths: np.ndarray  # int64, per example, after truncation
    truncated: np.ndarray  # bool, per example
    starts: np.ndarray = field(init=False)
    dropped_overlong: int = field(default=0, init=False)  # left out by rows_for(overlong="drop")

    def __post_init__(self):
        self.starts = _starts(self.lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def select(self, keep: np.ndarray) -> Examples:
        """The examples where the boolean mask `keep` is True, in order (a token mask: 1 byte a token)."""
        tokens = np.repeat(keep, self.lengths)
        return Examples(self.ids[tokens], self.labels[tokens], self.lengths[keep], self.truncated[keep])

    @classmethod
    def concat(cls, parts: list[Examples]) -> Examples:
        names = ("ids", "labels", "lengths", "truncated")
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in names))

    def as_lists(self, name: str) -> list[list[int]]:
        values = getattr(self, name)
        return [values[s:s + n].tolist() for s, n in zip(self.starts.tolist(), self.lengths.tolist())]


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive pieces of these lengths starts."""
    return np.cumsum(lengths) - lengths


def _token_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat positions of the tokens of examples (starts, lengths), in that order."""
    return np.repeat(starts - _starts(lengths), lengths) + np.arange(int(lengths.sum()))


PARALLEL_ENV = "TOKENIZERS_PARALLELISM"
PARALLEL_MIN_TEXTS = 2_000  # below this a batch is done before the thread pool pays for itself
_parallel_set_here = False  # True once this module (not the user) has written PARALLEL_ENV


@contextlib.contextmanager
def _parallel_tokenizer(n_texts: int):
    """Let the Rust tokenizer spread a large batch over the cores (it reads PARALLEL_ENV at each call).

    A user's own setting wins. Between batches the variable is left "false": a process that forks after
    the tokenizer's thread pool has run (a DataLoader worker, a subprocess) then neither deadlocks on
    it nor prints the library's fork warning, as it would with the variable unset.
    """
    global _parallel_set_here
    if n_texts < PARALLEL_MIN_TEXTS or (PARALLEL_ENV in os.environ and not _parallel_set_here):
        yield
        return
    _parallel_set_here = True
    os.environ[PARALLEL_ENV] = "true"
    try:
        yield
    finally:
        os.environ[PARALLEL_ENV] = "false"


def encode_text(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of data text, special-token text included as plain text.

    A cell holding the literal `<|endoftext|>` must not become the end-of-text id: it would end the
    example early and train whatever follows (a planted "Question: ... Answer: ...") outside the
    answers-only mask. The only special id in an example is the EOS appended after the answer.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # the Rust tokenizer itself: skips building offsets and a BatchEncoding
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        before = backend.encode_special_tokens
        backend.encode_special_tokens = True
        try:
            with _parallel_tokenizer(len(texts)):
                return [e.ids for e in encode(texts, add_special_tokens=False)]
        finally:
            backend.encode_special_tokens = before
    return tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]


@dataclass
class Encoded:
    """Each row's templated prompt and answer as token ids, before EOS and truncation: what both the
    training rows and the dataset report are made from, so one tokenizer pass serves both. Flat int32
    arrays (row i's prompt is prompt_ids[prompt_starts[i]:][:prompt_lengths[i]]): a million rows of
    Python int lists would take ~3 GiB, these ~0.3 GiB."""

    prompt_ids: np.ndarray  # int32
    prompt_lengths: np.ndarray  # int64, per row
    reply_ids: np.ndarray  # int32
    reply_lengths: np.ndarray  # int64, per row
    prompt_starts: np.ndarray = field(init=False)
    reply_starts: np.ndarray = field(init=False)

    def __post_init__(self):
        self.prompt_starts, self.reply_starts = _starts(self.prompt_lengths), _starts(self.reply_lengths)

    def __len__(self) -> int:
        return len(self.prompt_lengths)

    def take(self, positions) -> Encoded:
        positions = np.asarray(positions, dtype=np.int64)
        parts = []
        for i in range(0, len(positions), TAKE_CHUNK_ROWS):  # chunks bound the int64 token positions
            rows = positions[i:i + TAKE_CHUNK_ROWS]
            prompts = _token_index(self.prompt_starts[rows], self.prompt_lengths[rows])
            replies = _token_index(self.reply_starts[rows], self.reply_lengths[rows])
            parts.append(Encoded(self.prompt_ids[prompts], self.prompt_lengths[rows],
                                 self.reply_ids[replies], self.reply_lengths[rows]))
        return Encoded.concat(parts) if parts else Encoded(*(getattr(self, name)[:0] for name in ENCODED_ARRAYS))

    def lengths(self) -> tuple[list[int], list[int]]:
        return self.prompt_lengths.tolist(), self.reply_lengths.tolist()

    @classmethod
    def concat(cls, parts: list[Encoded]) -> Encoded:
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in ENCODED_ARRAYS))


ENCODED_ARRAYS = ("prompt_ids", "prompt_lengths", "reply_ids", "reply_lengths")  # Encoded's fields, in order


def _flat(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    return np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int32, count=int(lengths.sum())), lengths


def _strings(values, start: int) -> list:
    """One chunk of a column as Python strings: an Arrow-backed column (large files) would otherwise
    become a million Python strings at once."""
    part = values.iloc[start:start + TOKENIZE_CHUNK_ROWS] if hasattr(values, "iloc") else \
        values[start:start + TOKENIZE_CHUNK_ROWS]
    return list(part)


def encode_pairs(questions, answers, tokenizer) -> Encoded:
    """Tokenize the prompt template of every question and every answer, in large batches."""
    parts = []
    for start in range(0, len(questions), TOKENIZE_CHUNK_ROWS):
        prompts = _flat(encode_text(tokenizer, [format_prompt(q) for q in _strings(questions, start)]))
        replies = _flat(encode_text(tokenizer, [format_answer(a) for a in _strings(answers, start)]))
        parts.append(Encoded(*prompts, *replies))
    empty = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    return Encoded.concat(parts) if parts else Encoded(*empty, *empty)


def encode_frame(frame, tokenizer, cache_dir: str | Path | None = None, fingerprint: str | None = None) -> Encoded:
    """`encode_pairs` of a cleaned frame's two columns. With `cache_dir`, the ids are kept there (in a
    hidden folder beside the prepared rows) under a hash of the text and the tokenizer, so a rerun on the
    same data (any max_length, split or packing) skips the tokenizer: minutes for a million rows.
    `fingerprint`: a hash that already names the frame's text (`QAData.fingerprint`)."""
    def encode() -> Encoded:
        return encode_pairs(frame["question"], frame["answer"], tokenizer)

    if cache_dir is None:
        return encode()
    from gpt2tune.data import tokcache

    def save(encoded: Encoded, folder: Path) -> None:
        np.savez(folder / "encoded.npz", **{name: getattr(encoded, name) for name in ENCODED_ARRAYS})

    def read(folder: Path) -> Encoded:
        with np.load(folder / "encoded.npz") as saved:
            return Encoded(*(saved[name] for name in ENCODED_ARRAYS))

    key = tokcache.encoded_key(frame, tokenizer, fingerprint)
    return tokcache.cached(Path(cache_dir) / ".tokens", key, encode, save, read)


def _examples(encoded: Encoded, eos: int, max_length: int, answers_only: bool) -> Examples:
    """Prompt + answer + EOS per row, cut at max_length, built with array indexing (no per-token Python)."""
    prompt_lengths, reply_lengths = encoded.prompt_lengths, encoded.reply_lengths
    full_lengths = prompt_lengths + reply_lengths + 1
    lengths = np.minimum(full_lengths, max_length)
    position = np.arange(int(lengths.sum())) - np.repeat(_starts(lengths), lengths)  # within its example
    prompt_end = np.repeat(prompt_lengths, lengths)
    in_prompt = position < prompt_end
    in_reply = ~in_prompt & (position < prompt_end + np.repeat(reply_lengths, lengths))
    ids = np.full(len(position), eos, dtype=np.int32)  # what is left is each example's final EOS
    ids[in_prompt] = encoded.prompt_ids[(np.repeat(encoded.prompt_starts, lengths) + position)[in_prompt]]
    ids[in_reply] = encoded.reply_ids[(np.repeat(encoded.reply_starts, lengths) + position - prompt_end)[in_reply]]
    labels = ids.copy()
    if answers_only:
        labels[in_prompt] = IGNORE_INDEX
    return Examples(ids, labels, lengths, full_lengths > max_length)


def tokenize_examples(questions, answers, tokenizer, max_length: int, answers_only: bool,
                      encoded: Encoded | None = None) -> Examples:
    """Prompt + answer + EOS for every pair, truncated to max_length, tokenized in large batches
    (or built from `encoded`, the same pairs already tokenized by `encode_pairs`)."""
    if encoded is None:
        encoded = encode_pairs(questions, answers, tokenizer)
    parts = [_examples(encoded.take(np.arange(start, min(start + TOKENIZE_CHUNK_ROWS, len(encoded)))),
                       tokenizer.eos_token_id, max_length, answers_only)
             for start in range(0, len(encoded), TOKENIZE_CHUNK_ROWS)]  # chunks bound the int64 temporaries
    return Examples.concat(parts) if parts else _examples(encoded, tokenizer.eos_token_id, max_length, answers_only)


def tokenize_pairs(questions, answers, tokenizer, max_length: int, answers_only: bool) -> dict:
    """Tokenize a batch as lists: prompt + answer + EOS; labels mask the prompt when `answers_only`."""
    examples = tokenize_examples(questions, answers, tokenizer, max_length, answers_only)
    return {
        "input_ids": examples.as_lists("ids"),
        "labels": examples.as_lists("labels"),
        "truncated": examples.truncated.tolist(),
    }


# --- pack ---------------------------------------------------------------------------------------


def pack_lengths(lengths, capacity: int) -> list[list[int]]:
    """Best-fit-decreasing bin packing: indices of examples for each row, rows nearly full.

    Longest first, each into the row with the least free space that still fits it. Rows are kept in
    buckets by free space; there are at most `capacity` distinct free spaces, so finding the best
    bucket is a bisect over a short sorted list, whatever the number of rows (a million examples
    pack in seconds).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and lengths.max() > capacity:
        raise ValueError(f"an example of {lengths.max()} tokens cannot fit a row of {capacity}")
    rows: list[list[int]] = []
    spaces: list[int] = []  # sorted free-space values that some row has
    rows_by_space: dict[int, list[int]] = {}  # free space -> rows with exactly that free space
    for i, n in zip(np.argsort(-lengths, kind="stable").tolist(), sorted(lengths.tolist(), reverse=True)):
        k = bisect.bisect_left(spaces, n)
        if k == len(spaces):
            row, space = len(rows), capacity - n
            rows.append([i])
        else:
            bucket = rows_by_space[spaces[k]]
            row, space = bucket.pop(), spaces[k] - n
            if not bucket:
                del rows_by_space[spaces.pop(k)]
            rows[row].append(i)
        if space:  # a full row takes nothing more: don't track it
            if space not in rows_by_space:
                bisect.insort(spaces, space)
                rows_by_space[space] = []
            rows_by_space[space].append(row)
    return rows


def _row_batches(examples: Examples, groups: list[list[int]]):
    """Arrow record batches of rows: input_ids, labels and seq_lengths (example lengths in the row)."""
    import pyarrow as pa

    order = np.fromiter(itertools.chain.from_iterable(groups), dtype=np.int64, count=len(examples))
    examples_per_row = np.fromiter(map(len, groups), dtype=np.int64, count=len(groups))
    row_starts = np.concatenate([[0], np.cumsum(examples_per_row)])
    for r0 in range(0, len(groups), WRITE_CHUNK_ROWS):
        r1 = min(r0 + WRITE_CHUNK_ROWS, len(groups))
        chosen = order[row_starts[r0]:row_starts[r1]]
        lengths = examples.lengths[chosen]
        tokens = _token_index(examples.starts[chosen], lengths)
        labels = examples.labels[tokens]
        # The first token of an example has no predecessor within the example: never a target,
        # exactly as when the example is alone in its row.
        labels[_starts(lengths)] = IGNORE_INDEX
        example_offsets = (row_starts[r0:r1 + 1] - row_starts[r0]).astype(np.int32)
        token_offsets = np.concatenate([[0], np.cumsum(lengths)])[example_offsets].astype(np.int32)
        yield pa.record_batch({
            "input_ids": pa.ListArray.from_arrays(token_offsets, examples.ids[tokens]),
            "labels": pa.ListArray.from_arrays(token_offsets, labels),
            "seq_lengths": pa.ListArray.from_arrays(example_offsets, lengths.astype(np.int32)),
        })


def _row_schema():
    import pyarrow as pa

    return pa.schema({name: pa.list_(pa.int32()) for name in ("input_ids", "labels", "seq_lengths")})


def _groups(examples: Examples, max_length: int, pack: bool) -> list[list[int]]:
    return pack_lengths(examples.lengths, max_length) if pack else [[i] for i in range(len(examples))]


def _rows_dataset(examples: Examples, max_length: int, pack: bool, path: Path | None = None):
    """A `datasets.Dataset` of rows: in memory, or written to `path` and memory-mapped from there."""
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    batches = _row_batches(examples, _groups(examples, max_length, pack))
    if path is None:
        return Dataset(InMemoryTable(pa.Table.from_batches(list(batches), _row_schema())))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, _row_schema()) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return Dataset.from_file(str(path))  # memory-mapped: RAM holds only the rows being read


# --- prepare ------------------------------------------------------------------------------------


def _trainable(examples: Examples) -> np.ndarray:
    """Examples with at least one target after their first token (the question may fill max_length).
    Summed per example with reduceat: no per-token int64 arrays (a million examples: ~1.4 GiB)."""
    if not len(examples):
        return np.zeros(0, dtype=bool)
    labelled = examples.labels != IGNORE_INDEX
    return np.add.reduceat(labelled, examples.starts, dtype=np.int64) - labelled[examples.starts] > 0


def prepare_datasets(train_frame, eval_frame, tokenizer, max_length: int, answers_only: bool, pack: bool,
                     cache_dir: str | Path | None = None, encoded=None, overlong: str = "truncate",
                     fingerprint: str | None = None):
    """Build the train and eval `datasets.Dataset`s of packed rows, plus a report of what changed.

    With `cache_dir`, the result is stored there under a hash of the question/answer content, the
    tokenizer and these settings; a later call with the same inputs loads it instead of tokenizing.
    `encoded`: a function returning the (train, eval) splits already tokenized by `encode_pairs` (either
    may be None: that split is tokenized here); called only when the rows are built, so a cache hit
    skips it.
    `fingerprint`: a hash that already names both frames' text (so they are not hashed again).
    """
    def prepare(folder: Path | None):
        return _prepare(train_frame, eval_frame, tokenizer, max_length, answers_only, pack, folder, encoded, overlong)

    if cache_dir is None:
        return prepare(None)
    from gpt2tune.data import tokcache

    key = tokcache.prep_key(frames=(train_frame, eval_frame), tokenizer=tokenizer, max_length=max_length,
                            answers_only=answers_only, pack=pack, overlong=overlong, fingerprint=fingerprint)
    try:
        folder, hit = tokcache.fetch_or_build(Path(cache_dir), key, build=prepare)
    except OSError as error:  # an unwritable or full disk costs the cache, not the run
        train_set, eval_set, report = prepare(None)
        report.warnings.append(f"tokenized data not cached ({cache_dir}: {error.strerror or error})")
        return train_set, eval_set, report
    return _load_prepared(folder, from_cache=hit)


def rows_for(frame, tokenizer, max_length: int, answers_only: bool, pack: bool, path: Path | None = None,
             encoded: Encoded | None = None, overlong: str = "truncate"):
    """(examples kept, their rows as a Dataset or None when none is left, examples dropped): one split,
    tokenized, stripped of examples with nothing left to learn (and, with overlong="drop", of those
    longer than max_length; `dropped_overlong(examples)` tells how many), and packed."""
    examples = tokenize_examples(frame["question"], frame["answer"], tokenizer, max_length, answers_only, encoded)
    keep = _trainable(examples)
    too_long = examples.truncated & keep if overlong == "drop" else np.zeros(len(examples), dtype=bool)
    examples = examples.select(keep & ~too_long)
    examples.dropped_overlong = int(too_long.sum())
    rows = _rows_dataset(examples, max_length, pack, path) if len(examples) else None
    return examples, rows, int((~keep).sum())


def _prepare(train_frame, eval_frame, tokenizer, max_length, answers_only, pack, folder: Path | None,
             encoded=None, overlong: str = "truncate"):
    splits, counts = {}, {"truncated": 0, "dropped": 0, "overlong": 0}
    encoded = encoded() if encoded is not None else (None, None)
    for (name, frame), pairs in zip((("train", train_frame), ("eval", eval_frame)), encoded):
        path = folder / f"{name}.arrow" if folder is not None else None
        examples, rows, dropped = rows_for(frame, tokenizer, max_length, answers_only, pack, path, pairs, overlong)
        counts["dropped"] += dropped
        counts["overlong"] += examples.dropped_overlong
        counts["truncated"] += int(examples.truncated.sum())
        splits[name] = (examples, rows)
    (train, train_set), (evals, eval_set) = splits["train"], splits["eval"]
    if len(train) == 0:
        raise ValueError(
            f"no training examples left: every question fills max_length={max_length} tokens; raise max_length"
        )
    train_tokens = int(train.lengths.sum())
    report = PrepReport(
        train_examples=len(train),
        eval_examples=len(evals),
        truncated=counts["truncated"],
        dropped_no_answer_left=counts["dropped"],
        train_rows=len(train_set),
        eval_rows=len(eval_set) if eval_set is not None else 0,
        train_tokens=train_tokens,
        padding_waste_unpacked=1 - train_tokens / (len(train) * max_length),
        warnings=_warnings(counts, max_length, len(evals)),
        dropped_overlong=counts["overlong"],
        max_length=max_length,
    )
    if folder is not None:
        (folder / "report.json").write_text(json.dumps(report.to_dict()))
    return train_set, eval_set, report


def _load_prepared(folder: Path, from_cache: bool):
    from datasets import Dataset

    report = PrepReport(**json.loads((folder / "report.json").read_text()))
    report.from_cache, report.cache_path = from_cache, str(folder)
    eval_path = folder / "eval.arrow"
    eval_set = Dataset.from_file(str(eval_path)) if eval_path.exists() else None
    return Dataset.from_file(str(folder / "train.arrow")), eval_set, report


def _warnings(counts: dict, max_length: int, n_eval: int) -> list[str]:
    warnings = []
    if counts["truncated"]:
        warnings.append(f"{counts['truncated']} examples were longer than max_length={max_length} tokens and were "
                        "truncated (no end-of-text token at the cut)")
    if counts.get("overlong"):
        warnings.append(f"{counts['overlong']} examples were longer than max_length={max_length} tokens and were "
                        "dropped (overlong=drop)")
    if counts["dropped"]:
        warnings.append(f"{counts['dropped']} examples were dropped: the question alone filled max_length={max_length}")
    if n_eval == 0:
        warnings.append("no eval split (too few rows or eval_fraction=0): training without eval loss")
    return warnings


# --- collate ------------------------------------------------------------------------------------


class PackedCollator:
    """Pad rows to the batch's longest and build per-example positions and a block-diagonal mask.

    SDPA takes a boolean mask (True = may attend); eager attention wants an additive float mask.
    The mask costs batch x width x width bytes (8 MiB for 8 rows of 1024): small next to the
    activations of one layer, so it is built here, on the CPU, from per-token example ids.
    `pad_to_multiple_of=max_length` gives every batch one shape, so torch.compile compiles once.
    """

    def __init__(self, pad_token_id: int, float_mask_dtype=None, pad_to_multiple_of: int = 8):
        self.pad_token_id = pad_token_id
        self.float_mask_dtype = float_mask_dtype
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(rows)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((batch, width), dtype=torch.long)
        segment = torch.full((batch, width), -1, dtype=torch.long)  # example index; -1 = padding
        for b, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[b, :n] = torch.as_tensor(row["input_ids"])
            labels[b, :n] = torch.as_tensor(row["labels"])
            lengths = torch.as_tensor(row["seq_lengths"], dtype=torch.long)
            segment[b, :n] = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
            starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
            position_ids[b, :n] = torch.arange(n) - starts
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        mask = (segment[:, :, None] == segment[:, None, :]) & causal
        # Padding attends to itself only, so no softmax row is empty (an empty one gives NaN).
        mask |= torch.eye(width, dtype=torch.bool)
        mask = mask[:, None]
        if self.float_mask_dtype is not None:
            mask = torch.zeros(mask.shape, dtype=self.float_mask_dtype).masked_fill(
                ~mask, torch.finfo(self.float_mask_dtype).min
            )
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            "attention_mask": mask,
            "num_real_tokens": torch.tensor(int((segment >= 0).sum())),
        }
