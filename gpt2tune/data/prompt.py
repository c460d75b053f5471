"""The one prompt template, shared by training and generation so they can never drift apart."""

from __future__ import annotations

QUESTION_MARKER = "Question: "
ANSWER_MARKER = "\nAnswer:"


def format_prompt(question: str) -> str:
    """What the model sees before it answers: the same prefix at training and generation time."""
    return f"{QUESTION_MARKER}{question.strip()}{ANSWER_MARKER}"


def format_answer(answer: str) -> str:
    # A leading space makes the first answer word the same BPE token as mid-sentence text.
    return " " + answer.strip()


def template_description() -> str:
    return format_prompt("{question}") + format_answer("{answer}") + "<|endoftext|>"
