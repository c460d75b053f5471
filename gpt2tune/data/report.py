"""What is in a Q&A dataset, before training on it: lengths, duplicates and train/eval leakage.

Lengths are counted in tokens of the exact training text (template + answer + EOS), so
`over_max_length` is the number of examples training will truncate. Leakage is checked on the very
split training uses (`prep.split_frame` with the same seed): an eval question that also appears in
the training split measures recall, not generalisation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

MAX_CONTEXT = 1024  # GPT-2's positions: no point suggesting a longer max_length
LENGTH_STEP = 32  # suggested max_length is a multiple of this (friendly to GPU kernels)
COVERAGE_PERCENTILE = 99
EXAMPLES_SHOWN = 3


@dataclass
class DatasetReport:
    rows: int
    max_length: int
    token_lengths: list[int]  # whole training example: prompt template + answer + EOS
    question_lengths: list[int]  # the templated prompt "Question: ...\nAnswer:"
    answer_lengths: list[int]  # the answer as trained on (with its leading space), without EOS
    over_max_length: int  # examples training will truncate
    suggested_max_length: int  # covers COVERAGE_PERCENTILE % of examples, multiple of LENGTH_STEP
    exact_duplicates: int  # rows repeating an earlier (question, answer) pair verbatim
    normalised_duplicates: int  # same, ignoring case, spacing and punctuation (includes exact ones)
    duplicate_questions: int  # rows whose normalised question appeared earlier, whatever the answer
    duplicate_examples: list[str] = field(default_factory=list)
    train_rows: int = 0
    eval_rows: int = 0
    leakage_count: int = 0  # eval rows whose normalised question is also in the training split
    leakage_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lengths = np.asarray(self.token_lengths)
        percent = 100 * self.over_max_length / max(1, self.rows)
        lines = [
            f"{self.rows:,} examples; tokens per example: min {lengths.min()}, median {int(np.median(lengths))}, "
            f"p95 {int(np.percentile(lengths, 95))}, max {lengths.max()} "
            f"(question median {int(np.median(self.question_lengths))}, "
            f"answer median {int(np.median(self.answer_lengths))})",
            f"{self.over_max_length:,} examples ({percent:.1f}%) are longer than max_length={self.max_length} "
            f"and will be truncated; suggested max_length: {self.suggested_max_length} "
            f"(fits {COVERAGE_PERCENTILE}% of examples)",
            f"duplicates: {self.exact_duplicates:,} exact, {self.normalised_duplicates:,} ignoring case/spacing/"
            f"punctuation; {self.duplicate_questions:,} repeated questions",
        ]
        lines += [f"  e.g. {_quote(text)}" for text in self.duplicate_examples]
        if self.eval_rows:
            lines.append(
                f"leakage: {self.leakage_count:,} of {self.eval_rows:,} eval questions also appear in the "
                f"training split" + (" (eval scores on them measure recall, not generalisation)"
                                     if self.leakage_count else "")
            )
            lines += [f"  e.g. {_quote(text)}" for text in self.leakage_examples]
        else:
            lines.append("leakage: no eval split")
        return "\n".join(lines)


def dataset_report(frame, tokenizer, max_length: int, eval_fraction: float, seed: int) -> DatasetReport:
    """Measure a cleaned question/answer frame (columns "question" and "answer")."""
    from gpt2tune.data.prep import split_frame
    from gpt2tune.data.prompt import format_answer, format_prompt

    if len(frame) == 0:
        raise ValueError("the dataset has no rows to report on")
    questions, answers = list(frame["question"]), list(frame["answer"])
    # One batched call each: the fast tokenizer runs the whole column in Rust.
    prompt_lengths = _token_counts(tokenizer, [format_prompt(q) for q in questions])
    answer_lengths = _token_counts(tokenizer, [format_answer(a) for a in answers])
    token_lengths = [p + a + 1 for p, a in zip(prompt_lengths, answer_lengths)]  # + EOS

    normal_q, normal_a = normalise(frame["question"]), normalise(frame["answer"])
    exact = frame.duplicated(subset=["question", "answer"])
    normalised = (normal_q + "\x00" + normal_a).duplicated()
    train_frame, eval_frame = split_frame(frame, eval_fraction, seed)
    leaked = normalise(eval_frame["question"]).isin(set(normalise(train_frame["question"])))
    return DatasetReport(
        rows=len(frame),
        max_length=max_length,
        token_lengths=token_lengths,
        question_lengths=prompt_lengths,
        answer_lengths=answer_lengths,
        over_max_length=sum(n > max_length for n in token_lengths),
        suggested_max_length=suggest_max_length(token_lengths),
        exact_duplicates=int(exact.sum()),
        normalised_duplicates=int(normalised.sum()),
        duplicate_questions=int(normal_q.duplicated().sum()),
        duplicate_examples=list(frame["question"].iloc[normalised.to_numpy()].head(EXAMPLES_SHOWN)),
        train_rows=len(train_frame),
        eval_rows=len(eval_frame),
        leakage_count=int(leaked.sum()),
        leakage_examples=list(eval_frame["question"].iloc[leaked.to_numpy()].head(EXAMPLES_SHOWN)),
    )


def suggest_max_length(token_lengths: list[int]) -> int:
    """The COVERAGE_PERCENTILE-th percentile length, rounded up to LENGTH_STEP, capped at the context."""
    covering = float(np.percentile(token_lengths, COVERAGE_PERCENTILE))
    return int(min(MAX_CONTEXT, max(LENGTH_STEP, math.ceil(covering / LENGTH_STEP) * LENGTH_STEP)))


def normalise(values):
    """Lower case, punctuation dropped, whitespace runs as one space: 'What is X?' == 'what  is x'."""
    return (
        values.astype(str).str.lower()
        .str.replace(r"[^\w\s]", "", regex=True)
        .str.replace(r"\s+", " ", regex=True)
        .str.strip()
        .reset_index(drop=True)
    )


COUNT_CHUNK_ROWS = 10_000  # token ids are counted and dropped per chunk: memory stays flat on big files


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: no BatchEncoding built
    encode = getattr(backend, "encode_batch_fast", None) if backend is not None else None
    counts = []
    for start in range(0, len(texts), COUNT_CHUNK_ROWS):
        chunk = texts[start:start + COUNT_CHUNK_ROWS]
        if encode is not None:
            counts += [len(encoding) for encoding in encode(chunk, add_special_tokens=False)]
        else:
            counts += [len(ids) for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]]
    return counts


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
