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

import re

import pandas as pd

EXAMPLES_SHOWN = 3
_PUNCTUATION = re.compile(r"[^\w\s]")


def normalise(values) -> pd.Series:
    """Normalised text of each value (a Series or any sequence of str), index reset."""
    values = pd.Series(values, dtype="object").astype(str)
    # each distinct text once: answers such as "Yes" or "No" repeat thousands of times
    codes, uniques = pd.factorize(values)
    folded = pd.Series(uniques, dtype="object").str.normalize("NFKC").str.casefold()
    # str.split() is the whitespace rule of \s, and faster than a second regex on a million rows
    normal = folded.map(lambda text: " ".join(_PUNCTUATION.sub("", text).split())).to_numpy(dtype=object)
    return pd.Series(normal[codes] if len(codes) else [], dtype="object")


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


def duplicate_counts(questions, answers, q_norm=None, a_norm=None) -> DuplicateCounts:
    """Count repeats in aligned question and answer columns (rows in file order); `q_norm`/`a_norm`:
    their `normalise`d text when the caller has it already."""
    questions = pd.Series(questions, dtype="object").astype(str).reset_index(drop=True)
    answers = pd.Series(answers, dtype="object").astype(str).reset_index(drop=True)
    q_norm = normalise(questions) if q_norm is None else pd.Series(q_norm, dtype="object").reset_index(drop=True)
    a_norm = normalise(answers) if a_norm is None else pd.Series(a_norm, dtype="object").reset_index(drop=True)
    exact = pd.DataFrame({"q": questions, "a": answers}).duplicated()
    pairs = pd.DataFrame({"q": q_norm, "a": a_norm})
    normalised = pairs.duplicated()
    per_question = q_norm.value_counts()
    answers_per_question = pairs.drop_duplicates()["q"].value_counts()
    return DuplicateCounts(
        rows=len(questions),
        exact_duplicate_rows=int(exact.sum()),
        normalised_duplicate_rows=int(normalised.sum()),
        repeated_questions=int((per_question > 1).sum()),
        repeated_question_rows=int(q_norm.duplicated().sum()),
        conflicting_questions=int((answers_per_question > 1).sum()),
        examples=list(questions[normalised.to_numpy()].head(EXAMPLES_SHOWN)),
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
    train_keys = set(normalise(train_questions))
    eval_norm = normalise(eval_questions)
    leaked = eval_norm.isin(train_keys).to_numpy()
    originals = pd.Series(eval_questions, dtype="object").reset_index(drop=True)
    return Leakage(
        eval_rows=len(eval_norm),
        leaked_rows=int(leaked.sum()),
        leaked_questions=int(eval_norm[leaked].nunique()),
        examples=list(originals[leaked].head(EXAMPLES_SHOWN)),
    )
