"""The length policy: which max_length training uses, how many examples it fits, what happens to the rest.

A truncated example loses its end-of-text token, so the model never learns to stop on it. The
default (`max_length` 0, "auto") is therefore the smallest multiple of LENGTH_STEP that fits at
least COVERAGE of the examples whole, capped at the model's context (`n_positions`): packing
makes the longer rows nearly free. Every coverage stated is counted, never assumed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

AUTO = 0  # max_length 0 means: choose it from the data
LENGTH_STEP = 64  # chosen lengths are multiples of this (friendly to GPU kernels)
COVERAGE = 0.99  # share of examples the automatic length fits whole
GPT2_CONTEXT = 1024  # positions of every released GPT-2; used when no model is at hand
OVERLONG_CHOICES = ("truncate", "drop")


@dataclass
class LengthPolicy:
    max_length: int  # the length training uses
    auto: bool  # chosen from the data (max_length 0) rather than set
    context: int  # the model's positions: no example can be longer
    examples: int
    fitting: int  # examples whose whole text (prompt + answer + end-of-text) fits max_length
    over_context: int  # examples longer than the context: no max_length can fit them
    needed: int  # the length that would fit COVERAGE of examples, uncapped (multiple of LENGTH_STEP)
    overlong: str  # what happens to the examples that do not fit: "truncate" or "drop"

    @property
    def coverage(self) -> float:
        return self.fitting / self.examples if self.examples else 1.0

    @property
    def over_max_length(self) -> int:
        return self.examples - self.fitting

    def to_dict(self) -> dict:
        return {**asdict(self), "coverage": self.coverage, "over_max_length": self.over_max_length}

    def summary(self) -> str:
        how = (f"auto: the smallest multiple of {LENGTH_STEP} fitting {COVERAGE:.0%} of examples"
               if self.auto else "set")
        lines = [f"max_length {self.max_length} ({how}): fits {self.fitting:,} of {self.examples:,} examples whole "
                 f"({percent(self.coverage)})"]
        if self.auto and self.needed > self.max_length:
            lines.append(f"{COVERAGE:.0%} of examples would need {self.needed} tokens, over the model's context of "
                         f"{self.context}")
        if self.over_max_length:
            fate = ("truncated at the limit, without the end-of-text token (the model is not taught to stop on them)"
                    if self.overlong == "truncate" else "dropped from training and evaluation")
            lines.append(f"{self.over_max_length:,} examples are longer than {self.max_length} tokens: {fate} "
                         f"(overlong={self.overlong})")
        if self.over_context:
            lines.append(f"{self.over_context:,} examples are longer than the model's context of {self.context} "
                         "tokens and can never fit whole")
        return "\n".join(lines)


def choose_max_length(token_lengths, context: int = GPT2_CONTEXT, requested: int = AUTO,
                      overlong: str = "truncate") -> LengthPolicy:
    """The policy for examples of these whole lengths (prompt + answer + end-of-text, in tokens)."""
    lengths = np.asarray(token_lengths, dtype=np.int64)
    needed = auto_length(lengths)
    if requested and requested > context:
        raise ValueError(f"max_length {requested} is longer than the model's context of {context} tokens; "
                         f"use at most {context}, or 0 for auto")
    chosen = int(requested) if requested else min(needed, context)
    return LengthPolicy(
        max_length=chosen, auto=not requested, context=int(context), examples=len(lengths),
        fitting=int((lengths <= chosen).sum()), over_context=int((lengths > context).sum()),
        needed=needed, overlong=overlong,
    )


def example_lengths(tokenizer, questions, answers) -> list[int]:
    """Whole training length of each example in tokens: prompt + answer + end-of-text, as prep builds it
    (`prep.encode_pairs`: special-token text counts as the plain text it is trained as)."""
    from gpt2tune.data.prep import encode_pairs

    prompts, replies = encode_pairs(questions, answers, tokenizer).lengths()
    return [p + a + 1 for p, a in zip(prompts, replies)]


def auto_length(lengths) -> int:
    """The smallest multiple of LENGTH_STEP that at least COVERAGE of `lengths` fit (uncapped)."""
    lengths = np.sort(np.asarray(lengths, dtype=np.int64))
    if len(lengths) == 0:
        return LENGTH_STEP
    # the k-th smallest length, k = ceil(COVERAGE * n): every length up to it is covered
    k = max(1, math.ceil(COVERAGE * len(lengths) - 1e-9))
    return max(LENGTH_STEP, math.ceil(int(lengths[k - 1]) / LENGTH_STEP) * LENGTH_STEP)


def percent(share: float) -> str:
    """A coverage as every view writes it (one decimal, never rounded up)."""
    # never round up to a coverage that was not reached: 98.96 % is "98.9%", not "99.0%"
    return f"{math.floor(share * 1000) / 10:.1f}%"
