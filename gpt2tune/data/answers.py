"""Several acceptable answers to one question (a JSON list in the answer cell, as in SQuAD or
Natural Questions files): which one is trained on, and all of them as references for scoring.

The loader keeps the first answer in "answer" (what training sees by default) and, when a file has
lists, every answer in a "references" column. A frame without that column has one reference per
row: its answer.
"""

from __future__ import annotations

ANSWER_LIST_CHOICES = ("first", "each")


def references_of(frame) -> list[list[str]]:
    """The acceptable answers of each row, in row order."""
    if "references" in frame.columns:
        return [list(refs) if len(refs) else [answer] for refs, answer in zip(frame["references"], frame["answer"])]
    return [[answer] for answer in frame["answer"]]


def all_references(frame) -> list[str]:
    return [answer for refs in references_of(frame) for answer in refs]


def expand_answers(frame, answer_lists: str = "first"):
    """The rows training uses: as they are ("first"), or one row per acceptable answer ("each").

    Applied to the training split only, after splitting: one question's answers never straddle the
    train/eval boundary.
    """
    if answer_lists not in ANSWER_LIST_CHOICES:
        raise ValueError(f"answer_lists must be one of {', '.join(ANSWER_LIST_CHOICES)} (got {answer_lists!r})")
    if answer_lists == "first" or "references" not in frame.columns:
        return frame
    expanded = frame.assign(answer=references_of(frame)).explode("answer", ignore_index=True)
    return expanded.assign(answer=expanded["answer"].astype(str))
