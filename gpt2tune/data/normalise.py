"""The one normalisation and the one duplicate definition, used by the loader, the dataset report,
`train`, `eval`, metrics.json and the model card, so that every count of duplicates or leakage a
user sees is the same number under the same name.

Two texts are "the same" when they are equal after `normalise`: Unicode compatibility forms folded
(NFKC), case folded, punctuation dropped, runs of whitespace as one space. "What is X?" and
"what  is x" are the same question.

Units are part of the definition and appear in every sentence:
- *rows*: lines of the cleaned table (a question asked three times is three rows);
- *distinct questions*: normalised question texts (a question asked three times is one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from gpt2tune.data.tables import take_rows
from gpt2tune.data.textnorm import normalise_text

EXAMPLES_SHOWN = 3


def normalise(values) -> pd.Series:
    """Normalised text of each value (a Series or any sequence of str), index reset."""
    values = pd.Series(values, dtype="object").astype(str)
    # each distinct text once: answers such as "Yes" or "No" repeat thousands of times
    codes, uniques = pd.factorize(values)
    normal = pd.Series(uniques, dtype="object").map(normalise_text).to_numpy(dtype=object)
    return pd.Series(normal[codes] if len(codes) else [], dtype="object")


SLICE_ROWS = 20_000  # cells normalised at once: their Python strings are the memory that matters
BLANK = -1  # the code of every cell whose normalised text is empty (punctuation only)


def normalised_codes(*columns) -> list[np.ndarray]:
    """For each column (a Series or sequence of str), int64 codes in one code space shared by all the
    columns: two cells get the same code exactly when their `normalise`d texts are equal (BLANK when empty).

    A million cells as normalised Python strings take gigabytes; here each slice of cells is normalised,
    hashed to 8 bytes and dropped. Only the cells whose hash repeats are normalised again and compared
    as text, so the codes are exact: a hash collision never makes two different texts equal.
    """
    columns = [_as_series(column) for column in columns]
    hashes, blank = [], []
    for column in columns:
        for start in range(0, len(column), SLICE_ROWS):
            normal = normalise(column.iloc[start:start + SLICE_ROWS]).to_numpy(dtype=object)
            hashes.append(pd.util.hash_array(normal, categorize=False))
            blank.append(normal == "")
    hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
    blank = np.concatenate(blank) if blank else np.zeros(0, dtype=bool)
    may_repeat = pd.Series(hashes).duplicated(keep=False).to_numpy() & ~blank
    codes = np.full(len(hashes), BLANK, dtype=np.int64)
    ends = np.cumsum([len(column) for column in columns])
    texts = []
    for column, end in zip(columns, ends):  # the few cells that may repeat, as exact normalised text
        at = np.flatnonzero(may_repeat[end - len(column):end])
        texts.append(normalise(take_rows(column, at)))
    repeated, _ = pd.factorize(pd.concat(texts, ignore_index=True)) if texts else (np.zeros(0, np.int64), None)
    codes[may_repeat] = repeated
    alone = ~may_repeat & ~blank  # a hash no other cell has: a text no other cell has
    codes[alone] = len(repeated) + np.arange(int(alone.sum()))
    return [codes[end - len(column):end] for column, end in zip(columns, ends)]


def _as_series(values) -> pd.Series:
    """A Series with a fresh 0..n-1 index (as it is when it is one already: Arrow strings stay Arrow)."""
    return values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values, dtype="object")


def exact_firsts(*columns) -> np.ndarray:
    """For each row of these aligned columns, the position of the first row equal to it character for
    character (its own when it is the first). 64-bit row hashes find the rows that may repeat (8 bytes a
    row, in slices), and only those are compared as strings."""
    frame = pd.DataFrame({i: _as_series(c) for i, c in enumerate(columns)})
    firsts = np.arange(len(frame))
    # in slices: hashing Arrow-backed strings makes Python strings of them, one slice at a time
    hashes = np.concatenate([pd.util.hash_pandas_object(frame.iloc[start:start + SLICE_ROWS], index=False)
                             .to_numpy() for start in range(0, max(len(frame), 1), SLICE_ROWS)])
    candidates = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
    if len(candidates):
        few = pd.DataFrame({i: take_rows(frame[i], candidates).to_numpy(dtype=object) for i in frame.columns})
        groups = few.groupby(list(few.columns), sort=False).ngroup().to_numpy()
        firsts[candidates] = pd.Series(candidates).groupby(groups).transform("first").to_numpy()
    return firsts


def exact_duplicated(*columns) -> np.ndarray:
    """`DataFrame.duplicated(keep="first")` of the rows of these aligned columns, exact (see `exact_firsts`)."""
    firsts = exact_firsts(*columns)
    return firsts != np.arange(len(firsts))


@dataclass
class DuplicateCounts:
    """Repeats in one table of (question, answer) rows, before any row is dropped."""

    rows: int  # rows counted
    exact_duplicate_rows: int  # rows repeating an earlier (question, answer) pair character for character
    normalised_duplicate_rows: int  # rows repeating an earlier pair once normalised (includes the exact ones)
    repeated_questions: int  # distinct questions asked in more than one row
    repeated_question_rows: int  # rows whose question was asked in an earlier row (whatever the answer)
    conflicting_questions: int  # distinct questions with more than one distinct (normalised) answer
    examples: list[str] = field(default_factory=list)  # a few questions of normalised duplicate rows

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"duplicates: {self.exact_duplicate_rows:,} rows repeat an earlier row exactly, "
                f"{self.normalised_duplicate_rows:,} rows once case, spacing and punctuation are ignored; "
                f"{self.repeated_questions:,} distinct questions are asked in more than one row "
                f"({self.repeated_question_rows:,} repeat rows), {self.conflicting_questions:,} distinct "
                f"questions have different answers")


def duplicate_counts(questions, answers, q_codes=None, a_codes=None, exact=None) -> DuplicateCounts:
    """Count repeats in aligned question and answer columns (rows in file order); `q_codes`/`a_codes`:
    their `normalised_codes`, `exact`: their `exact_duplicated`, when the caller has them already."""
    questions, answers = _as_series(questions), _as_series(answers)
    if q_codes is None or a_codes is None:
        q_codes, a_codes = normalised_codes(questions, answers)
    if exact is None:
        exact = exact_duplicated(questions.astype(str), answers.astype(str))
    pairs = pd.DataFrame({"q": q_codes, "a": a_codes})
    normalised = pairs.duplicated().to_numpy()
    per_question = pairs["q"].value_counts()
    answers_per_question = pairs.drop_duplicates()["q"].value_counts()
    return DuplicateCounts(
        rows=len(questions),
        exact_duplicate_rows=int(exact.sum()),
        normalised_duplicate_rows=int(normalised.sum()),
        repeated_questions=int((per_question > 1).sum()),
        repeated_question_rows=int(pairs["q"].duplicated().sum()),
        conflicting_questions=int((answers_per_question > 1).sum()),
        examples=[str(q) for q in take_rows(questions, np.flatnonzero(normalised)[:EXAMPLES_SHOWN])],
    )


@dataclass
class Leakage:
    """Eval rows whose question also appears (normalised) in the training rows."""

    eval_rows: int
    leaked_rows: int  # eval rows whose question is also a training question
    leaked_questions: int  # distinct questions among them
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def share(self) -> float:
        return self.leaked_rows / self.eval_rows if self.eval_rows else 0.0

    def summary(self, eval_name: str = "eval", train_name: str = "the training split") -> str:
        if not self.eval_rows:
            return f"leakage: no {eval_name} rows"
        text = (f"leakage: {self.leaked_rows:,} of {self.eval_rows:,} {eval_name} rows ({100 * self.share:.1f}%, "
                f"{self.leaked_questions:,} distinct questions) also appear in {train_name}")
        if self.leaked_rows:
            text += " (scores on them measure recall, not generalisation)"
        return text


def leakage(train_questions, eval_questions) -> Leakage:
    train_codes, eval_codes = normalised_codes(train_questions, eval_questions)
    return _leakage(train_codes, eval_codes, _as_series(eval_questions))


def split_leakage(questions, train_at, eval_at) -> Leakage:
    """`leakage` of the split (train_at, eval_at) of one question column, without copying either part."""
    (codes,) = normalised_codes(questions)
    return _leakage(codes[train_at], codes[eval_at], questions, eval_at)


def _leakage(train_codes, eval_codes, questions, eval_at=None) -> Leakage:
    """`questions`: the text the eval codes came from, at `eval_at` (every row when None)."""
    leaked = np.isin(eval_codes, train_codes)
    shown = np.flatnonzero(leaked)[:EXAMPLES_SHOWN]
    return Leakage(
        eval_rows=len(eval_codes),
        leaked_rows=int(leaked.sum()),
        leaked_questions=len(np.unique(eval_codes[leaked])),
        examples=[str(q) for q in take_rows(_as_series(questions), shown if eval_at is None else eval_at[shown])],
    )
