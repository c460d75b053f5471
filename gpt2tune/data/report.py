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
    special_token_rows: int = 0  # rows whose question or answer holds a special token's text, e.g. <|endoftext|>
    special_token_examples: list[str] = field(default_factory=list)
    prompt_marker_rows: int = 0  # rows whose question or answer holds "Question:" or "Answer:"
    prompt_marker_examples: list[str] = field(default_factory=list)

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
        lines.append(
            f"special tokens: {self.special_token_rows:,} rows hold special-token text such as <|endoftext|> "
            "(trained as plain text, never as the special token)"
        )
        lines += [f"  e.g. {_quote(text)}" for text in self.special_token_examples]
        lines.append(
            f"prompt markers: {self.prompt_marker_rows:,} rows hold 'Question:' or 'Answer:' inside a cell"
            + (" (the model learns to write these markers itself; check they are meant)"
               if self.prompt_marker_rows else "")
        )
        lines += [f"  e.g. {_quote(text)}" for text in self.prompt_marker_examples]
        return "\n".join(lines)


def dataset_report(frame, tokenizer, max_length: int, eval_fraction: float, seed: int,
                   encoded=None) -> DatasetReport:
    """Measure a cleaned question/answer frame (columns "question" and "answer").

    `encoded`: the frame's rows already tokenized (`prep.encode_pairs`), so they are not tokenized again."""
    from gpt2tune.data.prep import split_frame
    from gpt2tune.data.prompt import format_answer, format_prompt

    if len(frame) == 0:
        raise ValueError("the dataset has no rows to report on")
    questions, answers = list(frame["question"]), list(frame["answer"])
    if encoded is not None:
        prompt_lengths, answer_lengths = encoded.lengths()
    else:
        # One batched call each: the fast tokenizer runs the whole column in Rust.
        prompt_lengths = _token_counts(tokenizer, [format_prompt(q) for q in questions])
        answer_lengths = _token_counts(tokenizer, [format_answer(a) for a in answers])
    token_lengths = [p + a + 1 for p, a in zip(prompt_lengths, answer_lengths)]  # + EOS

    normal_q, normal_a = normalise(frame["question"]), normalise(frame["answer"])
    exact = frame.duplicated(subset=["question", "answer"])
    normalised = (normal_q + "\x00" + normal_a).duplicated()
    train_frame, eval_frame = split_frame(frame, eval_fraction, seed)
    leaked = normalise(eval_frame["question"]).isin(set(normalise(train_frame["question"])))
    special = _cells_containing(frame, special_token_texts(tokenizer))
    markers = _cells_containing(frame, prompt_marker_texts())
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
        special_token_rows=int(special.sum()),
        special_token_examples=_row_examples(frame, special),
        prompt_marker_rows=int(markers.sum()),
        prompt_marker_examples=_row_examples(frame, markers),
    )


def special_token_texts(tokenizer) -> list[str]:
    """The text of every special or added token of the tokenizer (GPT-2: just <|endoftext|>)."""
    texts = set(tokenizer.all_special_tokens)
    texts.update(token.content for token in getattr(tokenizer, "added_tokens_decoder", {}).values())
    return sorted(text for text in texts if text)


def prompt_marker_texts() -> list[str]:
    """The template's markers: a cell holding them looks, to the model, like a new question or answer."""
    from gpt2tune.data.prompt import ANSWER_MARKER, QUESTION_MARKER

    return [QUESTION_MARKER.strip(), ANSWER_MARKER.strip()]


def _cells_containing(frame, needles: list[str]):
    """Boolean per row: the question or the answer contains any of `needles` (literally)."""
    import re

    pattern = "|".join(re.escape(needle) for needle in needles)
    hit = frame["question"].astype(str).str.contains(pattern, regex=True)
    hit |= frame["answer"].astype(str).str.contains(pattern, regex=True)
    return hit.reset_index(drop=True).to_numpy()


def _row_examples(frame, mask) -> list[str]:
    rows = frame.iloc[mask]
    return [f"{q} -> {a}" for q, a in zip(rows["question"].head(EXAMPLES_SHOWN), rows["answer"].head(EXAMPLES_SHOWN))]


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


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    from gpt2tune.data.prep import encode_text

    return [len(ids) for ids in encode_text(tokenizer, texts)]


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
