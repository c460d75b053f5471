"""The training example nearest to a question: does an answer generalise, or recite what was trained?

An index over the training split's questions, built once per run: TF-IDF weights of character
3- and 5-grams of each normalised question (`textnorm`, the rule behind every duplicate and leakage
count), with words marked by the spaces around them, so that "resume training" and "resuming a run"
share grams where a word-level index would share nothing. The similarity is the cosine of two
questions' weight vectors: 1.0 for the same normalised question, 0 when no gram is shared, never
outside [0, 1] (every weight is positive).

numpy and the standard library only, and nothing of gpt2tune outside this folder's `textnorm`
(imported relatively): a demo Space copies both files as they are (gpt2tune.demo).

The index is one .npz file (no pickle): the grams as 64-bit hashes, their idf, an inverted list of
(row, weight) per gram, and the questions and answers as UTF-8. A query reads only the lists of its
own grams: a few milliseconds for 100,000 training rows (docs/performance.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .textnorm import normalise_text

INDEX_FILE = "nearest_index.npz"  # in a run folder, beside the model
GRAM_SIZES = (3, 5)  # 4 too would add a third of the index's size and time for little
FORMAT = 1
_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: odd, so the rolling hash keeps every bit


@dataclass(frozen=True)
class Match:
    question: str
    answer: str
    score: float  # cosine similarity of the two questions' TF-IDF vectors, in [0, 1]
    row: int  # position in the training split


def _grams(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(row of each gram, its 64-bit hash) for every character n-gram of " text " (n in GRAM_SIZES).

    All rows' code points go into one array with a row number per character; a gram is hashed where
    its window stays inside one row. The hash starts from n, so grams of different sizes are told apart."""
    padded = [f" {text} " for text in texts]
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)  # code points
    rows = np.repeat(np.arange(len(padded), dtype=np.int32), [len(text) for text in padded])
    out_rows, out_hashes = [np.zeros(0, np.int32)], [np.zeros(0, np.uint64)]
    with np.errstate(over="ignore"):  # the hash wraps modulo 2**64 on purpose
        for n in GRAM_SIZES:
            if len(codes) < n:
                continue
            starts = np.flatnonzero(rows[: len(rows) - n + 1] == rows[n - 1:])
            hashes = np.full(len(starts), np.uint64(n))
            for k in range(n):
                hashes = hashes * _MULTIPLIER + codes[starts + k]
            out_rows.append(rows[starts])
            out_hashes.append(hashes)
    return np.concatenate(out_rows), np.concatenate(out_hashes)


def _counted(rows: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, gram, count) for each distinct gram of each row, ordered by gram, then row.

    One stable sort by gram: `_grams` lists the grams of each size row by row, and a gram has one
    size, so the rows of one gram stay in ascending order and a row's repeats of it sit together."""
    order = np.argsort(hashes, kind="stable")
    rows, hashes = rows[order], hashes[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (hashes[1:] != hashes[:-1])
    at = np.flatnonzero(first)
    counts = np.diff(np.append(at, len(rows)))
    return rows[at], hashes[at], counts


def _tf(counts: np.ndarray) -> np.ndarray:
    return (1.0 + np.log(counts)).astype(np.float64)  # sublinear: a gram said twice is not twice as telling


def _pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one UTF-8 byte array and their end offsets: no pickle, no fixed-width padding."""
    encoded = [text.encode("utf-8") for text in texts]
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), np.cumsum([len(b) for b in encoded], dtype=np.int64)


class NearestIndex:
    """Build with `build(questions, answers)`, keep with `save`, reopen with `load`, ask with `nearest`."""

    def __init__(self, grams, idf, starts, rows, weights, text, ends, meta: dict):
        self.grams, self.idf, self.starts, self.rows, self.weights = grams, idf, starts, rows, weights
        self._text, self._ends = text, ends
        self.meta = meta

    def __len__(self) -> int:
        return int(self.meta["rows"])

    @classmethod
    def build(cls, questions, answers, source: dict | None = None) -> NearestIndex:
        """`questions`, `answers`: aligned sequences of text (the training split's rows, in order);
        `source`: what they came from (recorded, shown by `meta`)."""
        questions, answers = [str(q) for q in questions], [str(a) for a in answers]
        if len(questions) != len(answers):
            raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
        n = len(questions)
        rows, hashes, counts = _counted(*_grams([normalise_text(q) for q in questions]))
        grams, starts = np.unique(hashes, return_index=True)  # sorted by gram already: the list starts
        df = np.diff(np.append(starts, len(hashes)))
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0  # smoothed, as scikit-learn's TfidfVectorizer
        weights = _tf(counts) * np.repeat(idf, df)
        norms = np.sqrt(np.bincount(rows, weights=weights ** 2, minlength=n))
        weights = weights / np.where(norms > 0, norms, 1.0)[rows]
        text, ends = _pack(questions + answers)
        meta = {"format": FORMAT, "rows": n, "gram_sizes": list(GRAM_SIZES), "source": source or {}}
        return cls(grams, idf.astype(np.float32), np.append(starts, len(hashes)).astype(np.int64),
                   rows.astype(np.int32), weights.astype(np.float32), text, ends, meta)

    def save(self, path) -> Path:
        """Written beside and renamed into place: a reader never sees half an index."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            np.savez(out, grams=self.grams, idf=self.idf, starts=self.starts, rows=self.rows, weights=self.weights,
                     text=self._text, ends=self._ends,
                     meta=np.frombuffer(json.dumps(self.meta).encode("utf-8"), dtype=np.uint8))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> NearestIndex:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{Path(path).name} is an index of another format ({meta.get('format')})")
            return cls(data["grams"], data["idf"], data["starts"], data["rows"], data["weights"], data["text"],
                       data["ends"], meta)

    def _text_at(self, i: int) -> str:
        start = int(self._ends[i - 1]) if i else 0
        return self._text[start:int(self._ends[i])].tobytes().decode("utf-8")

    def example(self, row: int) -> tuple[str, str]:
        """(question, answer) of a training row."""
        return self._text_at(row), self._text_at(len(self) + row)

    def nearest(self, question: str, k: int = 1) -> list[Match]:
        """The `k` training rows whose questions are most similar to `question`, most similar first.

        Grams the training questions never had count in the question's length (so an unrelated
        question scores low) but match nothing. Empty when the index or the question has no gram."""
        _, hashes, counts = _counted(*_grams([normalise_text(str(question))]))
        if not len(hashes) or not len(self):
            return []
        at = np.searchsorted(self.grams, hashes)
        known = (at < len(self.grams)) & (self.grams[np.minimum(at, len(self.grams) - 1)] == hashes)
        unseen_idf = np.log(1.0 + len(self)) + 1.0  # df 0, smoothed as in `build`
        query = _tf(counts) * np.where(known, self.idf[np.minimum(at, len(self.grams) - 1)], unseen_idf)
        query /= np.sqrt(np.sum(query ** 2))
        lists = [(self.starts[g], self.starts[g + 1], w) for g, w in zip(at[known], query[known])]
        if not lists:
            return []
        rows = np.concatenate([self.rows[s:e] for s, e, _ in lists])
        weights = np.concatenate([self.weights[s:e] * np.float32(w) for s, e, w in lists])
        scores = np.bincount(rows, weights=weights, minlength=len(self))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        best = top[np.lexsort((top, -scores[top]))]  # most similar first; ties: the earlier training row
        return [Match(*self.example(int(i)), score=float(np.clip(scores[i], 0.0, 1.0)), row=int(i))
                for i in best if scores[i] > 0]
