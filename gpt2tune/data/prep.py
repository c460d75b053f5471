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
WRITE_CHUNK_ROWS = 20_000  # packed rows per Arrow record batch, at most
WRITE_CHUNK_TOKENS = 2**18  # tokens per record batch, about: bounds the memory of building one


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
    truncated_train: int = 0  # of `truncated`: in the training split (trained without their end-of-text)
    truncated_eval: int = 0

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
    from gpt2tune.data.tables import take_rows

    train, held_out = split_positions(len(frame), eval_fraction, seed)
    return take_rows(frame, train), take_rows(frame, held_out)


# --- tokenize -----------------------------------------------------------------------------------


@dataclass
class Examples:
    """Tokenized examples of one split, concatenated: example i is ids[starts[i]:starts[i] + lengths[i]]."""

    ids: np.ndarray  # int32
    labels: np.ndarray  # int32, aligned with ids; IGNORE_INDEX where no loss is taken
    lengths: np.ndarray  # int64, per example, after truncation
    truncated: np.ndarray  # bool, per example
    starts: np.ndarray = field(init=False)

    def __post_init__(self):
        self.starts = _starts(self.lengths)

    def __len__(self) -> int:
        return len(self.lengths)


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
    training rows and the dataset report are made from, so one tokenizer pass serves both. Flat arrays
    (row i's prompt is prompt_ids[prompt_starts[i]:][:prompt_lengths[i]]), uint16 when the vocabulary
    fits, as nanoGPT stores its tokens: a million rows of Python int lists would take ~3 GiB, these 0.12."""

    prompt_ids: np.ndarray  # uint16 or int32
    prompt_lengths: np.ndarray  # int64, per row
    reply_ids: np.ndarray
    reply_lengths: np.ndarray
    prompt_starts: np.ndarray = field(init=False)
    reply_starts: np.ndarray = field(init=False)

    def __post_init__(self):
        self.prompt_starts, self.reply_starts = _starts(self.prompt_lengths), _starts(self.reply_lengths)

    def __len__(self) -> int:
        return len(self.prompt_lengths)

    def take(self, rows) -> Encoded:
        """The rows at these positions. Callers take a batch at a time (a tokenizer chunk, a record
        batch of packed rows): the gather holds an int64 position per token taken."""
        rows = np.asarray(rows, dtype=np.int64)
        prompts = _token_index(self.prompt_starts[rows], self.prompt_lengths[rows])
        replies = _token_index(self.reply_starts[rows], self.reply_lengths[rows])
        return Encoded(self.prompt_ids[prompts], self.prompt_lengths[rows], self.reply_ids[replies],
                       self.reply_lengths[rows])

    def lengths(self) -> tuple[list[int], list[int]]:
        return self.prompt_lengths.tolist(), self.reply_lengths.tolist()


ENCODED_ARRAYS = ("prompt_ids", "prompt_lengths", "reply_ids", "reply_lengths")  # Encoded's fields, in order


def id_dtype(tokenizer) -> type:
    """The smallest integer type that holds every id of this tokenizer (GPT-2's 50,257 fit uint16)."""
    return np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32


class _IdBuffer:
    """Token ids appended batch by batch into one array reserved at a likely upper bound.

    Pages never written are never resident, so the ids cost their real size: joining per-batch arrays
    at the end would hold them twice. More tokens than reserved (emoji split into bytes) grow it.
    """

    def __init__(self, reserve: int, dtype):
        self.array, self.size = np.empty(max(reserve, 1), dtype=dtype), 0

    def extend(self, lists: list[list[int]]) -> np.ndarray:
        """Append these ids; returns their lengths (int64)."""
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        end = self.size + int(lengths.sum())
        if end > len(self.array):
            grown = np.empty(max(end, 2 * len(self.array)), dtype=self.array.dtype)
            grown[:self.size] = self.array[:self.size]
            self.array = grown
        self.array[self.size:end] = np.fromiter(itertools.chain.from_iterable(lists), dtype=self.array.dtype,
                                                count=end - self.size)
        self.size = end
        return lengths

    def ids(self) -> np.ndarray:
        return self.array[:self.size]


def _strings(values, start: int) -> list:
    """One chunk of a column as Python strings: an Arrow-backed column (large files) would otherwise
    become a million Python strings at once."""
    part = values.iloc[start:start + TOKENIZE_CHUNK_ROWS] if hasattr(values, "iloc") else \
        values[start:start + TOKENIZE_CHUNK_ROWS]
    return list(part)


def _characters(values) -> int:
    """Characters in a column (a Series or a list of str)."""
    return int(values.str.len().sum()) if hasattr(values, "str") else sum(map(len, values))


def encode_pairs(questions, answers, tokenizer) -> Encoded:
    """Tokenize the prompt template of every question and every answer, in large batches."""
    # A byte-level BPE token is at least a byte; nearly always a character or more (templates included).
    prompts = _IdBuffer(_characters(questions) + 8 * len(questions), id_dtype(tokenizer))
    replies = _IdBuffer(_characters(answers) + 4 * len(answers), id_dtype(tokenizer))
    prompt_lengths, reply_lengths = [], []
    for start in range(0, len(questions), TOKENIZE_CHUNK_ROWS):
        texts = [format_prompt(q) for q in _strings(questions, start)]
        prompt_lengths.append(prompts.extend(encode_text(tokenizer, texts)))
        texts = [format_answer(a) for a in _strings(answers, start)]
        reply_lengths.append(replies.extend(encode_text(tokenizer, texts)))
    prompt_lengths, reply_lengths = (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
                                     for parts in (prompt_lengths, reply_lengths))
    return Encoded(prompts.ids(), prompt_lengths, replies.ids(), reply_lengths)


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


# --- pack ---------------------------------------------------------------------------------------


PACK_SLICE = 65_536  # examples turned into Python ints at a time


def pack_rows(lengths, capacity: int) -> np.ndarray:
    """Best-fit-decreasing bin packing: the row of each example (int64), rows nearly full.

    Longest first, each into the row with the least free space that still fits it. Rows are kept in
    buckets by free space; there are at most `capacity` distinct free spaces, so finding the best
    bucket is a bisect over a short sorted list, whatever the number of rows (a million examples
    pack in seconds). The answer is one array, not a list per row: a million examples as lists of
    Python ints would take 0.13 GiB.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and lengths.max() > capacity:
        raise ValueError(f"an example of {lengths.max()} tokens cannot fit a row of {capacity}")
    row_of = np.empty(len(lengths), dtype=np.int64)
    longest_first = np.argsort(-lengths, kind="stable")
    n_rows = 0
    spaces: list[int] = []  # sorted free-space values that some row has
    rows_by_space: dict[int, list[int]] = {}  # free space -> rows with exactly that free space
    for start in range(0, len(lengths), PACK_SLICE):
        part = longest_first[start:start + PACK_SLICE]
        chosen = []
        for n in lengths[part].tolist():
            k = bisect.bisect_left(spaces, n)
            if k == len(spaces):
                row, space = n_rows, capacity - n
                n_rows += 1
            else:
                bucket = rows_by_space[spaces[k]]
                row, space = bucket.pop(), spaces[k] - n
                if not bucket:
                    del rows_by_space[spaces.pop(k)]
            chosen.append(row)
            if space:  # a full row takes nothing more: don't track it
                if space not in rows_by_space:
                    bisect.insort(spaces, space)
                    rows_by_space[space] = []
                rows_by_space[space].append(row)
        row_of[part] = chosen
    return row_of


def _row_order(lengths: np.ndarray, row_of: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(examples row by row, each row's examples in the order they were packed; examples per row).
    `row_of` None: one example a row, in order."""
    if row_of is None:
        return np.arange(len(lengths)), np.ones(len(lengths), dtype=np.int64)
    longest_first = np.argsort(-lengths, kind="stable")
    return longest_first[np.argsort(row_of[longest_first], kind="stable")], np.bincount(row_of)


def _row_batches(encoded: Encoded, chosen: np.ndarray, lengths: np.ndarray, row_of, eos: int, max_length: int,
                 answers_only: bool):
    """Arrow record batches of rows: input_ids, labels and seq_lengths (example lengths in the row).

    `chosen`: the examples' rows in `encoded`, `lengths` their lengths after the cut, `row_of` the
    packed row of each (None: one example a row). Each batch builds its examples' tokens
    from `encoded` itself, so a split's ids and labels never exist whole: memory is one batch.
    """
    import pyarrow as pa

    order, examples_per_row = _row_order(lengths, row_of)
    row_starts = np.concatenate([[0], np.cumsum(examples_per_row)])  # in `order`
    tokens_before = np.concatenate([[0], np.cumsum(lengths[order])])[row_starts]  # per row, and the end
    r0 = 0
    while r0 < len(examples_per_row):
        r1 = int(np.searchsorted(tokens_before, tokens_before[r0] + WRITE_CHUNK_TOKENS, side="right")) - 1
        r1 = min(max(r1, r0 + 1), r0 + WRITE_CHUNK_ROWS, len(examples_per_row))
        examples = _examples(encoded.take(chosen[order[row_starts[r0]:row_starts[r1]]]), eos, max_length,
                             answers_only)
        # The first token of an example has no predecessor within the example: never a target,
        # exactly as when the example is alone in its row.
        examples.labels[examples.starts] = IGNORE_INDEX
        example_offsets = (row_starts[r0:r1 + 1] - row_starts[r0]).astype(np.int32)
        token_offsets = (tokens_before[r0:r1 + 1] - tokens_before[r0]).astype(np.int32)
        yield pa.record_batch({
            "input_ids": pa.ListArray.from_arrays(token_offsets, examples.ids),
            "labels": pa.ListArray.from_arrays(token_offsets, examples.labels),
            "seq_lengths": pa.ListArray.from_arrays(example_offsets, examples.lengths.astype(np.int32)),
        })
        r0 = r1


def _row_schema():
    import pyarrow as pa

    return pa.schema({name: pa.list_(pa.int32()) for name in ("input_ids", "labels", "seq_lengths")})


def _rows_dataset(batches, path: Path | None = None):
    """A `datasets.Dataset` of these record batches: in memory, or written to `path` and memory-mapped."""
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    if path is None:
        return Dataset(InMemoryTable(pa.Table.from_batches(list(batches), _row_schema())))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, _row_schema()) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return Dataset.from_file(str(path))  # memory-mapped: RAM holds only the rows being read


# --- prepare ------------------------------------------------------------------------------------


def _shape(encoded: Encoded, positions: np.ndarray, max_length: int, answers_only: bool):
    """(length after the cut, truncated, trainable) of the examples at `positions`, from lengths alone.

    Trainable: a labelled token after the example's first (the first has no predecessor). Labels start
    at the answer with the answers-only mask, at the first token without it, so a question that fills
    max_length leaves nothing to learn.
    """
    prompt = encoded.prompt_lengths[positions]
    full = prompt + encoded.reply_lengths[positions] + 1  # + EOS
    lengths = np.minimum(full, max_length)
    return lengths, full > max_length, lengths > np.maximum(prompt if answers_only else 0, 1)


@dataclass
class SplitCounts:
    """What became of one split's examples on the way to rows."""

    examples: int  # kept
    tokens: int  # real tokens in the kept examples, after the cut
    truncated: int  # kept, cut at max_length
    dropped_overlong: int  # longer than max_length with overlong="drop"
    dropped_no_answer_left: int  # the question alone filled max_length


def prepare_datasets(train_frame, eval_frame, tokenizer, max_length: int, answers_only: bool, pack: bool,
                     cache_dir: str | Path | None = None, encoded=None, overlong: str = "truncate",
                     fingerprint: str | None = None):
    """Build the train and eval `datasets.Dataset`s of packed rows, plus a report of what changed.

    With `cache_dir`, the result is stored there under a hash of the question/answer content, the
    tokenizer and these settings; a later call with the same inputs loads it instead of tokenizing.
    `encoded`: a function returning, for the train and the eval split, (token ids by `encode_pairs`, the
    split's rows in them) or None (that split is tokenized here); called only when the rows are built,
    so a cache hit skips it.
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
             encoded: Encoded | None = None, overlong: str = "truncate", positions=None):
    """(SplitCounts, the rows as a Dataset or None when no example is left): one split, tokenized (or
    `encoded`: its rows at `positions` already tokenized by `encode_pairs`), stripped of examples with
    nothing left to learn (and, with overlong="drop", of those longer than max_length), and packed."""
    if encoded is None:
        encoded = encode_pairs(frame["question"], frame["answer"], tokenizer)
    positions = np.arange(len(encoded)) if positions is None else np.asarray(positions, dtype=np.int64)
    lengths, truncated, trainable = _shape(encoded, positions, max_length, answers_only)
    too_long = truncated & trainable if overlong == "drop" else np.zeros(len(positions), dtype=bool)
    keep = trainable & ~too_long
    counts = SplitCounts(examples=int(keep.sum()), tokens=int(lengths[keep].sum()),
                         truncated=int((truncated & keep).sum()), dropped_overlong=int(too_long.sum()),
                         dropped_no_answer_left=int((~trainable).sum()))
    if not counts.examples:
        return counts, None
    lengths = lengths[keep]
    row_of = pack_rows(lengths, max_length) if pack else None
    batches = _row_batches(encoded, positions[keep], lengths, row_of, tokenizer.eos_token_id, max_length,
                           answers_only)
    return counts, _rows_dataset(batches, path)


def _prepare(train_frame, eval_frame, tokenizer, max_length, answers_only, pack, folder: Path | None,
             encoded=None, overlong: str = "truncate"):
    splits = {}
    given = encoded() if encoded is not None else (None, None)
    for (name, frame), split in zip((("train", train_frame), ("eval", eval_frame)), given):
        path = folder / f"{name}.arrow" if folder is not None else None
        pairs, positions = split if split is not None else (None, None)
        splits[name] = rows_for(frame, tokenizer, max_length, answers_only, pack, path, pairs, overlong, positions)
    (train, train_set), (evals, eval_set) = splits["train"], splits["eval"]
    if train.examples == 0:
        raise ValueError(
            f"no training examples left: every question fills max_length={max_length} tokens; raise max_length"
        )
    counts = {"truncated": train.truncated + evals.truncated, "truncated_split": (train.truncated, evals.truncated),
              "overlong": train.dropped_overlong +
              evals.dropped_overlong, "dropped": train.dropped_no_answer_left + evals.dropped_no_answer_left}
    report = PrepReport(
        train_examples=train.examples,
        eval_examples=evals.examples,
        truncated=counts["truncated"],
        dropped_no_answer_left=counts["dropped"],
        train_rows=len(train_set),
        eval_rows=len(eval_set) if eval_set is not None else 0,
        train_tokens=train.tokens,
        padding_waste_unpacked=1 - train.tokens / (train.examples * max_length),
        warnings=_warnings(counts, max_length, evals.examples),
        dropped_overlong=counts["overlong"],
        max_length=max_length,
        truncated_train=train.truncated,
        truncated_eval=evals.truncated,
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
        in_train, in_eval = counts["truncated_split"]
        warnings.append(f"{counts['truncated']} examples ({in_train} train, {in_eval} eval) were longer than "
                        f"max_length={max_length} tokens and were truncated (no end-of-text token at the cut)")
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
