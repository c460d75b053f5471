"""Answer-quality metrics for the fine-tuned GPT-2 QA model.

Offline on purpose: the training machines cannot reach the Hub, so
`evaluate.load("squad")` / `evaluate.load("rouge")` cannot download their
scripts.  Instead:

* exact match and token F1 follow the official SQuAD v1.1 evaluation script,
  reproduced here;
* ROUGE-L is Google's `rouge_score` package itself (`rougeL`, no stemmer);
* with several acceptable answers (a list in the data), each score is the
  maximum over them, as the SQuAD and Natural Questions scripts do.

An answer that normalises to nothing ("---", ")", "A+" once punctuation and
articles are gone) never matches by normalisation: it matches only the very
same text. Otherwise an untrained model's ":" would "equal" a reference "---".

On top of them sits a small "memorisation meter": how often a generated
answer is (nearly) a verbatim copy of some training answer, and a plain
verdict combining train score, eval score and that copy rate.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from functools import lru_cache

__all__ = [
    "normalize_answer",
    "exact_match",
    "token_f1",
    "rouge_l",
    "answer_metrics",
    "nearest_training_answer",
    "copy_rate",
    "memorisation_verdict",
    "VERDICT_LEARNED",
    "VERDICT_MEMORISED",
    "VERDICT_NOT_LEARNED",
    "VERDICT_MIXED",
]

# --------------------------------------------------------------------------
# SQuAD normalisation, exact match, token F1
# --------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, strip ASCII punctuation and articles, collapse whitespace.

    Same steps in the same order as the official SQuAD v1.1 script, so our
    numbers are comparable with published SQuAD-style scores.  Order matters:
    punctuation goes before articles, so "the-cat" -> "thecat" keeps "the".
    """
    lowered = text.lower()
    without_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    without_articles = _ARTICLES_RE.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def _squad_tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def _same_text(prediction: str, reference: str) -> bool:
    """Identical apart from case and spacing: the only match left when normalising empties a side."""
    return " ".join(prediction.casefold().split()) == " ".join(reference.casefold().split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both answers are identical after normalisation, else 0.0.

    When either side normalises to nothing, only the same text matches.
    """
    normal_prediction, normal_reference = normalize_answer(prediction), normalize_answer(reference)
    if not normal_prediction or not normal_reference:
        return float(_same_text(prediction, reference))
    return float(normal_prediction == normal_reference)


def _f1_from_counts(prediction_counts: Counter, reference_counts: Counter) -> float:
    """SQuAD token F1 from bag-of-words counts (shared by F1 and the copy meter).

    Empty on either side scores 0: nothing shared is nothing matched (callers
    handle texts that normalise to nothing before getting here).
    """
    if not prediction_counts or not reference_counts:
        return 0.0
    overlap = sum((prediction_counts & reference_counts).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(prediction_counts.values())
    recall = overlap / sum(reference_counts.values())
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token-level F1 (multiset overlap of normalised tokens).

    When either side normalises to nothing, 1.0 only for the same text.
    """
    prediction_tokens, reference_tokens = _squad_tokens(prediction), _squad_tokens(reference)
    if not prediction_tokens or not reference_tokens:
        return float(_same_text(prediction, reference))
    return _f1_from_counts(Counter(prediction_tokens), Counter(reference_tokens))


# --------------------------------------------------------------------------
# ROUGE-L
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _rouge_scorer():
    # Imported on first use: rouge_score pulls in nltk (about a second), which most commands never need.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta=1) from Google's `rouge_score` (`rougeL`, no stemmer).

    Its tokeniser lowercases and splits on anything but [a-z0-9] (articles are kept, non-ASCII
    letters vanish); an empty side, including both empty, scores 0.0, unlike token_f1's
    "both empty -> 1.0".
    """
    return _rouge_scorer().score(target=reference, prediction=prediction)["rougeL"].fmeasure


# --------------------------------------------------------------------------
# Corpus-level aggregation
# --------------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def as_references(reference) -> list[str]:
    """A reference as a list of acceptable answers: a str is one, a list/tuple is several."""
    if isinstance(reference, str):
        return [reference]
    references = [str(r) for r in reference]
    if not references:
        raise ValueError("a reference list is empty: give at least one acceptable answer")
    return references


def best_score(metric, prediction: str, reference) -> float:
    """The metric against the closest of the acceptable answers (SQuAD/NQ: max over references)."""
    return max(metric(prediction, r) for r in as_references(reference))


def answer_metrics(predictions: list[str], references: list) -> dict:
    """Mean exact match, F1 and ROUGE-L (fractions 0..1) plus the pair count.

    Each reference is a str or a list of acceptable answers (scored against the closest one).

    An empty evaluation gives zeros with count 0 rather than raising, so a
    UI can render "no data yet" without special-casing.
    """
    if len(predictions) != len(references):
        # Silently zipping would drop pairs and inflate/deflate the scores.
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references"
        )
    pairs = list(zip(predictions, references))
    return {
        "exact_match": _mean([best_score(exact_match, p, r) for p, r in pairs]),
        "f1": _mean([best_score(token_f1, p, r) for p, r in pairs]),
        "rouge_l": _mean([best_score(rouge_l, p, r) for p, r in pairs]),
        "count": len(pairs),
    }


# --------------------------------------------------------------------------
# Memorisation meter
# --------------------------------------------------------------------------


class _TrainingAnswerIndex:
    """Token counts of the training answers plus an inverted index.

    Only answers sharing at least one token with the prediction can have a
    non-zero F1, so the inverted index lets us skip most of a large training
    set.  Built once per copy_rate call instead of once per prediction.
    """

    def __init__(self, training_answers: list[str]):
        self.counts = [Counter(_squad_tokens(answer)) for answer in training_answers]
        self.answer_ids_by_token: dict[str, list[int]] = {}
        # An answer that normalises to nothing ("---", ")") is in no token's list:
        # it is never a copy target, and an empty prediction copies nothing.
        for answer_id, counts in enumerate(self.counts):
            for token in counts:
                self.answer_ids_by_token.setdefault(token, []).append(answer_id)

    def nearest(self, prediction: str) -> tuple[int, float]:
        if not self.counts:
            return -1, 0.0
        prediction_counts = Counter(_squad_tokens(prediction))
        if not prediction_counts:
            return 0, 0.0
        candidate_ids = set()
        for token in prediction_counts:
            candidate_ids.update(self.answer_ids_by_token.get(token, ()))
        # Default: every answer ties at 0.0, report the first one.
        best_id, best_score = 0, 0.0
        # Sorted so that ties resolve to the lowest index, deterministically.
        for answer_id in sorted(candidate_ids):
            score = _f1_from_counts(prediction_counts, self.counts[answer_id])
            if score > best_score:
                best_id, best_score = answer_id, score
        return best_id, best_score


def nearest_training_answer(
    prediction: str, training_answers: list[str]
) -> tuple[int, float]:
    """(index, token F1) of the training answer most similar to `prediction`.

    Ties go to the lowest index.  With no training answers returns (-1, 0.0).
    """
    return _index_for(tuple(training_answers)).nearest(prediction)


@lru_cache(maxsize=4)
def _index_for(training_answers: tuple[str, ...]) -> _TrainingAnswerIndex:
    # Callers typically loop over predictions with the same training set;
    # caching the index turns 100 x 5,000 re-tokenisations into one.  A tuple
    # key is hashable and immutable, so a list mutated later cannot alias a
    # stale index.
    return _TrainingAnswerIndex(list(training_answers))


def copy_rate(
    predictions: list[str], training_answers: list[str], threshold: float = 0.9
) -> float:
    """Fraction of predictions whose nearest training answer has F1 >= threshold.

    0.9 by default: near-verbatim copies (one token off in a ten-token answer
    still counts) without flagging answers that merely share vocabulary.
    """
    if not predictions:
        return 0.0
    index = _index_for(tuple(training_answers))
    copies = sum(1 for p in predictions if index.nearest(p)[1] >= threshold)
    return copies / len(predictions)


# Verdict labels; exported so that callers (e.g. the UI) compare constants,
# not string literals.
VERDICT_LEARNED = "learned (generalises)"
VERDICT_MEMORISED = "memorised (copies training answers)"
VERDICT_NOT_LEARNED = "not learned yet"
VERDICT_MIXED = "mixed"

# Thresholds on token F1 (fractions 0..1).  Chosen for short free-form QA
# answers, where SQuAD-style F1 of a reasonable model is typically 0.3-0.8.
# Below this train F1 the model has not even fitted the data it saw.
NOT_LEARNED_MAX_TRAIN_F1 = 0.2
# A train-minus-eval F1 gap above this is a large overfitting gap ...
MEMORISED_MIN_GAP = 0.3
# ... and it is called memorisation only when at least this share of eval
# answers is a near-verbatim training answer (otherwise it is just overfitting
# of a different kind -> "mixed").
MEMORISED_MIN_COPY_RATE = 0.5
# "Eval close to train": the gap is at most this (eval above train also counts).
GENERALISES_MAX_GAP = 0.1
# ... and eval F1 must be meaningfully above zero, or "close" means nothing.
GENERALISES_MIN_EVAL_F1 = 0.3


def _pick_verdict(train_f1: float, eval_f1: float, eval_copy_rate: float) -> str:
    gap = train_f1 - eval_f1
    if train_f1 < NOT_LEARNED_MAX_TRAIN_F1:
        return VERDICT_NOT_LEARNED
    if gap > MEMORISED_MIN_GAP and eval_copy_rate >= MEMORISED_MIN_COPY_RATE:
        return VERDICT_MEMORISED
    if gap <= GENERALISES_MAX_GAP and eval_f1 > GENERALISES_MIN_EVAL_F1:
        return VERDICT_LEARNED
    return VERDICT_MIXED


_VERDICT_CONCLUSIONS = {
    VERDICT_NOT_LEARNED: "so the model has not learned the training answers yet",
    VERDICT_MEMORISED: "so the model is memorising training answers rather than learning",
    VERDICT_LEARNED: "so the model has learned and generalises to unseen questions",
    VERDICT_MIXED: "so the model has learned something but the picture is mixed",
}


def memorisation_verdict(
    train_scores: dict, eval_scores: dict, copy_rate_eval: float
) -> dict:
    """Plain-language verdict from answer_metrics() dicts and the eval copy rate.

    Uses the "f1" key of both score dicts.  Returns {"verdict": label,
    "text": one sentence quoting the numbers}.
    """
    train_f1 = float(train_scores["f1"])
    eval_f1 = float(eval_scores["f1"])
    verdict = _pick_verdict(train_f1, eval_f1, copy_rate_eval)
    text = (
        f"Training F1 is {train_f1:.2f} and evaluation F1 is {eval_f1:.2f} "
        f"(gap {train_f1 - eval_f1:.2f}), and {copy_rate_eval:.0%} of evaluation "
        f"answers copy a training answer, {_VERDICT_CONCLUSIONS[verdict]}."
    )
    return {"verdict": verdict, "text": text}


def perplexity(loss: float) -> float:
    """exp(mean token loss); past e^50 it is meaningless, and math.exp would overflow soon after."""
    return math.exp(loss) if loss < 50 else float("inf")
