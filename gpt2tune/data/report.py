"""What is in a Q&A dataset, before training on it: lengths, duplicates, train/eval leakage, languages.

Lengths are counted in tokens of the exact training text (template + answer + EOS), and the length
policy (`length.choose_max_length`) states how many examples the max_length fits whole. Duplicates
and leakage use the one definition in `normalise`. Leakage is checked on the very split training
uses (`prep.split_positions` with the same seed): an eval question that also appears in the training
split measures recall, not generalisation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from gpt2tune.data.length import GPT2_CONTEXT, LengthPolicy, choose_max_length, percent
from gpt2tune.data.normalise import DuplicateCounts, Leakage, duplicate_counts, split_leakage
from gpt2tune.data.tables import take_rows

MAX_CONTEXT = GPT2_CONTEXT
EXAMPLES_SHOWN = 3


@dataclass
class DatasetReport:
    rows: int
    max_length: int
    token_lengths: list[int]  # whole training example: prompt template + answer + EOS
    question_lengths: list[int]  # the templated prompt "Question: ...\nAnswer:"
    answer_lengths: list[int]  # the answer as trained on (with its leading space), without EOS
    over_max_length: int  # examples longer than max_length: truncated or dropped (length.overlong)
    suggested_max_length: int  # what auto chooses: fits length.COVERAGE of examples, capped at the context
    exact_duplicates: int  # rows repeating an earlier (question, answer) pair verbatim (before de-duplication)
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
    length: LengthPolicy | None = None  # the max_length used, its true coverage and what happens to the rest
    duplicates: DuplicateCounts | None = None
    leakage: Leakage | None = None
    languages: dict = field(default_factory=dict)  # detected language -> sampled rows
    non_english_share: float = 0.0  # of the sampled rows whose language could be told
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        values = asdict(self)
        if self.length is not None:
            values["length"] = self.length.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> DatasetReport:
        """The report `to_dict` wrote (derived figures such as coverage are computed again, not read)."""
        values = dict(values)
        nested = {"length": LengthPolicy, "duplicates": DuplicateCounts, "leakage": Leakage}
        for name, kind in nested.items():
            if values.get(name) is not None:
                names = {f.name for f in fields(kind)}
                values[name] = kind(**{k: v for k, v in values[name].items() if k in names})
        return cls(**values)

    def write(self, folder: Path) -> None:
        (Path(folder) / "report.json").write_text(json.dumps(self.to_dict()))

    @classmethod
    def read(cls, folder: Path) -> DatasetReport:
        return cls.from_dict(json.loads((Path(folder) / "report.json").read_text()))

    def summary(self) -> str:
        lengths = np.asarray(self.token_lengths)
        lines = [
            f"{self.rows:,} examples; tokens per example: min {lengths.min()}, median {int(np.median(lengths))}, "
            f"p95 {int(np.percentile(lengths, 95))}, p99 {int(np.percentile(lengths, 99))}, max {lengths.max()} "
            f"(question median {int(np.median(self.question_lengths))}, "
            f"answer median {int(np.median(self.answer_lengths))})",
            self.length.summary(),
        ]
        if self.length.max_length != self.suggested_max_length:
            auto = choose_max_length(self.token_lengths, self.length.context)
            lines.append(f"auto (max_length 0) would choose {auto.max_length}, fitting {auto.fitting:,} examples "
                         f"whole ({percent(auto.coverage)})")
        lines.append(self.duplicates.summary())
        lines += [f"  e.g. {_quote(text)}" for text in self.duplicate_examples]
        if self.eval_rows:
            lines.append(self.leakage.summary())
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
        if self.languages:
            from gpt2tune.data.content import language_summary

            lines.append(language_summary(self.languages)[1])
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def dataset_report(frame, tokenizer, max_length: int, eval_fraction: float, seed: int,
                   encoded=None, context: int = MAX_CONTEXT, overlong: str = "truncate",
                   duplicates: DuplicateCounts | None = None, languages: bool = True) -> DatasetReport:
    """Measure a cleaned question/answer frame (columns "question" and "answer").

    `max_length` 0 is auto (see `length`); `context` is the model's positions. `duplicates`: the
    loader's counts, taken before it dropped exact repeats (else they are counted on `frame`).
    `encoded`: the frame's rows already tokenized (`prep.encode_pairs`), so they are not tokenized again.
    """
    from gpt2tune.data.prep import encode_pairs, split_positions

    if len(frame) == 0:
        raise ValueError("the dataset has no rows to report on")
    if encoded is None:
        encoded = encode_pairs(frame["question"], frame["answer"], tokenizer)
    prompt_lengths, answer_lengths = encoded.lengths()
    token_lengths = [p + a + 1 for p, a in zip(prompt_lengths, answer_lengths)]  # + EOS
    policy = choose_max_length(token_lengths, context, max_length, overlong)

    duplicates = duplicates or duplicate_counts(frame["question"], frame["answer"])
    train_at, eval_at = split_positions(len(frame), eval_fraction, seed)  # the split training uses
    if overlong == "drop":  # the examples left out are neither trained nor evaluated on: leakage counts the rest
        fits = np.asarray(token_lengths) <= policy.max_length
        train_at, eval_at = train_at[fits[train_at]], eval_at[fits[eval_at]]
    leaked = split_leakage(frame["question"], train_at, eval_at)
    special = _cells_containing(frame, special_token_texts(tokenizer))
    markers = _cells_containing(frame, prompt_marker_texts())
    report = DatasetReport(
        rows=len(frame),
        max_length=policy.max_length,
        token_lengths=token_lengths,
        question_lengths=prompt_lengths,
        answer_lengths=answer_lengths,
        over_max_length=policy.over_max_length,
        suggested_max_length=min(policy.needed, policy.context),
        exact_duplicates=duplicates.exact_duplicate_rows,
        normalised_duplicates=duplicates.normalised_duplicate_rows,
        duplicate_questions=duplicates.repeated_question_rows,
        duplicate_examples=duplicates.examples,
        train_rows=len(train_at),
        eval_rows=len(eval_at),
        leakage_count=leaked.leaked_rows,
        leakage_examples=leaked.examples,
        special_token_rows=int(special.sum()),
        special_token_examples=_row_examples(frame, special),
        prompt_marker_rows=int(markers.sum()),
        prompt_marker_examples=_row_examples(frame, markers),
        length=policy,
        duplicates=duplicates,
        leakage=leaked,
    )
    if languages:
        _languages(report, frame, seed)
    return report


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
    rows = take_rows(frame, np.flatnonzero(mask)[:EXAMPLES_SHOWN])
    return [f"{q} -> {a}" for q, a in zip(rows["question"], rows["answer"])]


def _languages(report: DatasetReport, frame, seed: int) -> None:
    from gpt2tune.data.content import LANGUAGE_SAMPLE, NON_ENGLISH_WARN, language_counts, language_summary

    if len(frame) > LANGUAGE_SAMPLE:  # the rows language_counts would sample, before joining a million texts
        frame = take_rows(frame, np.random.default_rng(seed).choice(len(frame), LANGUAGE_SAMPLE, replace=False))
    report.languages = language_counts(frame["question"] + "\n" + frame["answer"], seed=seed)
    report.non_english_share, sentence = language_summary(report.languages)
    if report.non_english_share > NON_ENGLISH_WARN:
        report.warnings.append(f"{sentence.removeprefix('language: ')}; GPT-2 was trained on English text, so "
                               "expect weak answers in other languages (or start from a model trained on them)")


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
