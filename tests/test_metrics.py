"""Tests for gpt2tune.evaluation.metrics against hand-computed values.

Each expected number has its arithmetic in a comment, so a failing test can
be checked with pencil and paper rather than against another implementation.
"""


import pytest

from gpt2tune.evaluation.metrics import (
    VERDICT_LEARNED,
    VERDICT_MEMORISED,
    VERDICT_MIXED,
    VERDICT_NOT_LEARNED,
    answer_metrics,
    copy_rate,
    exact_match,
    memorisation_verdict,
    nearest_training_answer,
    normalize_answer,
    rouge_l,
    token_f1,
)

# --------------------------------------------------------------------------
# normalize_answer
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        # lower -> "the cat, sat!" -> no punct "the cat sat" -> no article
        ("The Cat, sat!", "cat sat"),
        # articles a/an/the all go, runs of whitespace collapse
        ("An  apple... a day", "apple day"),
        # punctuation is removed BEFORE articles, so "the-cat" -> "thecat" stays
        ("the-cat", "thecat"),
        # \b word boundaries: "theatre", "another", "banana" keep their letters
        ("theatre another banana", "theatre another banana"),
        # leading/trailing/inner whitespace incl. tabs and newlines
        ("  \tParis\n  France ", "paris france"),
        ("", ""),
        ("the a an", ""),
        ("!!!", ""),
    ],
)
def test_normalize_answer_examples(raw, expected):
    assert normalize_answer(raw) == expected


def test_normalize_answer_keeps_unicode_letters_and_non_ascii_punctuation():
    # The official script only strips string.punctuation (ASCII): "?" goes,
    # the Spanish "¿" stays; accented letters are not folded, only lowercased.
    assert normalize_answer("¿Qué?") == "¿qué"
    assert normalize_answer("Café ÜBER") == "café über"


# --------------------------------------------------------------------------
# exact_match
# --------------------------------------------------------------------------


def test_exact_match_ignores_case_punctuation_and_articles():
    # "The Cat." -> "cat" == "cat"
    assert exact_match("The Cat.", "cat") == 1.0


def test_exact_match_is_not_fuzzy():
    assert exact_match("cats", "cat") == 0.0


def test_exact_match_empty_answers():
    # both normalise to "" but are different texts: an empty normalisation never matches
    assert exact_match("", "the") == 0.0
    assert exact_match(":", "---") == 0.0
    assert exact_match("A+", "a+") == 1.0  # the same text still matches
    assert exact_match("", "cat") == 0.0


# --------------------------------------------------------------------------
# token_f1
# --------------------------------------------------------------------------


def test_token_f1_partial_overlap():
    # pred [cat, sat], ref [cat, sat, down]; overlap 2
    # P = 2/2 = 1, R = 2/3, F1 = 2*1*(2/3) / (1 + 2/3) = (4/3)/(5/3) = 0.8
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)


def test_token_f1_counts_repeated_tokens_once_per_match():
    # Counter overlap: min(3, 1) = 1 shared "cat"
    # P = 1/3, R = 1/1, F1 = 2*(1/3)*1 / (4/3) = 0.5
    assert token_f1("cat cat cat", "cat") == pytest.approx(0.5)


def test_token_f1_ignores_word_order():
    # same bag of words -> P = R = 1
    assert token_f1("sat cat the", "the cat sat") == 1.0


def test_token_f1_no_overlap():
    assert token_f1("red blue", "green yellow") == 0.0


def test_token_f1_empty_answers():
    assert token_f1("", "") == 1.0
    # "the" and "!!!" both normalise to no tokens, but they are different texts
    assert token_f1("!!!", "the") == 0.0
    assert token_f1(")", ")") == 1.0
    assert token_f1("", "cat") == 0.0
    assert token_f1("cat", "") == 0.0


def test_token_f1_unicode_is_not_accent_folded():
    # [café, au, lait] vs [cafe, au, lait]; overlap 2
    # P = R = 2/3 -> F1 = 2/3
    assert token_f1("Café au lait", "cafe au lait") == pytest.approx(2 / 3)


# --------------------------------------------------------------------------
# rouge_l
# --------------------------------------------------------------------------


def test_rouge_l_one_substitution():
    # LCS of "the cat sat on the mat" / "the cat lay on the mat"
    # = "the cat on the mat" = 5; P = R = 5/6 -> F = 5/6
    assert rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(
        5 / 6
    )


def test_rouge_l_subsequence_with_gaps():
    # pred [a b c d e], ref [a c e]; LCS = a c e = 3
    # P = 3/5, R = 3/3 = 1, F = 2*0.6*1 / 1.6 = 0.75
    assert rouge_l("a b c d e", "a c e") == pytest.approx(0.75)


def test_rouge_l_respects_word_order_unlike_f1():
    # reversed: LCS = 1 (any single word); P = R = 1/3 -> F = 1/3,
    # whereas bag-of-words F1 is a perfect 1.0
    assert rouge_l("sat cat the", "the cat sat") == pytest.approx(1 / 3)


def test_rouge_l_keeps_articles():
    # rouge tokeniser keeps "the": pred [the, cat], ref [cat]; LCS 1
    # P = 1/2, R = 1/1, F = 2*0.5*1 / 1.5 = 2/3
    assert rouge_l("the cat", "cat") == pytest.approx(2 / 3)


def test_rouge_l_tokeniser_splits_on_non_alphanumerics():
    # "Don't stop!" -> "don t stop" -> [don, t, stop]
    assert rouge_l("Don't stop!", "don t stop") == 1.0
    # non-ASCII letters become separators: "Café" -> [caf]
    assert rouge_l("Café", "caf") == 1.0


def test_rouge_l_empty_or_untokenisable_scores_zero():
    # like rouge_score: any empty side -> 0.0 (even both empty)
    assert rouge_l("", "") == 0.0
    assert rouge_l("cat", "") == 0.0
    assert rouge_l("日本語", "日本語") == 0.0


# --------------------------------------------------------------------------
# answer_metrics
# --------------------------------------------------------------------------


def test_answer_metrics_means():
    predictions = ["The cat sat", "blue", "Paris"]
    references = ["a cat sat down", "red", "paris."]
    # EM:  0, 0, 1                          -> 1/3
    # F1:  0.8 (see above), 0, 1            -> 1.8/3 = 0.6
    # ROUGE-L pair 1: [the cat sat] vs [a cat sat down], LCS 2,
    #   P = 2/3, R = 2/4, F = 2*(1/3) / (7/6) = 4/7; pairs 2, 3: 0, 1
    #   -> (4/7 + 0 + 1) / 3 = 11/21
    result = answer_metrics(predictions, references)
    assert result["exact_match"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(0.6)
    assert result["rouge_l"] == pytest.approx(11 / 21)
    assert result["count"] == 3


def test_answer_metrics_empty_input():
    assert answer_metrics([], []) == {
        "exact_match": 0.0,
        "f1": 0.0,
        "rouge_l": 0.0,
        "count": 0,
    }


def test_answer_metrics_rejects_length_mismatch():
    with pytest.raises(ValueError):
        answer_metrics(["a"], [])


# --------------------------------------------------------------------------
# nearest_training_answer / copy_rate
# --------------------------------------------------------------------------

TRAINING = ["the capital is paris", "berlin", "paris is the capital of france"]


def test_nearest_training_answer_exact_copy():
    # [paris, is, capital] vs [capital, is, paris] -> same bag -> F1 1.0
    assert nearest_training_answer("Paris is the capital", TRAINING) == (0, 1.0)


def test_nearest_training_answer_best_partial_match():
    # pred [capital, of, france]
    # vs #0 [capital, is, paris]: overlap 1, P = R = 1/3 -> 1/3
    # vs #2 [paris, is, capital, of, france]: overlap 3, P = 1, R = 3/5
    #   -> F1 = 2*0.6 / 1.6 = 0.75   (winner)
    index, score = nearest_training_answer("capital of France", TRAINING)
    assert index == 2
    assert score == pytest.approx(0.75)


def test_nearest_training_answer_ties_go_to_lowest_index():
    assert nearest_training_answer("cat dog", ["x", "cat dog", "dog cat"]) == (1, 1.0)


def test_nearest_training_answer_no_overlap_and_empty_cases():
    # nothing shared: every answer scores 0.0, report the first
    assert nearest_training_answer("rome", TRAINING) == (0, 0.0)
    # no training answers at all
    assert nearest_training_answer("rome", []) == (-1, 0.0)
    # an empty prediction copies nothing, not even an answer that normalises to nothing
    assert nearest_training_answer("", ["cat", "the"]) == (0, 0.0)
    assert nearest_training_answer(":", ["cat", "---"]) == (0, 0.0)
    assert nearest_training_answer("", ["cat"]) == (0, 0.0)


def test_copy_rate_counts_near_verbatim_copies():
    predictions = ["Paris is the capital", "Berlin.", "rome"]
    # F1 to nearest: 1.0, 1.0, 0.0 -> 2 of 3 at threshold 0.9
    assert copy_rate(predictions, TRAINING) == pytest.approx(2 / 3)


def test_copy_rate_threshold():
    # [capital, is, paris, today] vs #0 [capital, is, paris]: overlap 3,
    # P = 3/4, R = 1 -> F1 = 1.5 / 1.75 = 6/7 ~ 0.857
    predictions = ["capital is paris today"]
    assert copy_rate(predictions, TRAINING) == 0.0
    assert copy_rate(predictions, TRAINING, threshold=0.85) == 1.0


def test_copy_rate_empty_inputs():
    assert copy_rate([], TRAINING) == 0.0
    assert copy_rate(["paris"], []) == 0.0


def test_nearest_training_answer_agrees_with_brute_force():
    training = [f"answer {i % 7} word{i % 13} and word{i % 5}" for i in range(200)]
    for prediction in ["answer 3 word4", "word1 and word2", "and", "nothing here"]:
        scores = [token_f1(prediction, answer) for answer in training]
        best = max(scores)
        assert nearest_training_answer(prediction, training) == (
            scores.index(best),
            best,
        )


# --------------------------------------------------------------------------
# memorisation_verdict
# --------------------------------------------------------------------------


def _verdict(train_f1, eval_f1, copy):
    return memorisation_verdict({"f1": train_f1}, {"f1": eval_f1}, copy)


@pytest.mark.parametrize(
    "train_f1, eval_f1, copy, expected",
    [
        # train 0.1 < 0.2: not even the training answers are fitted
        (0.1, 0.05, 0.0, VERDICT_NOT_LEARNED),
        # low train F1 wins even when the copy rate is high
        (0.15, 0.0, 0.9, VERDICT_NOT_LEARNED),
        # gap 0.9 - 0.3 = 0.6 > 0.3 and copy 0.7 >= 0.5
        (0.9, 0.3, 0.7, VERDICT_MEMORISED),
        # copy rate exactly at the 0.5 bound still counts
        (1.0, 0.5, 0.5, VERDICT_MEMORISED),
        # same big gap but few copies: overfitting, not copying
        (0.9, 0.3, 0.1, VERDICT_MIXED),
        # gap 0.6 - 0.55 = 0.05 <= 0.1 and eval 0.55 > 0.3
        (0.6, 0.55, 0.2, VERDICT_LEARNED),
        # eval above train also counts as close
        (0.5, 0.6, 0.0, VERDICT_LEARNED),
        # close (gap 0) but eval 0.25 is not > 0.3
        (0.25, 0.25, 0.0, VERDICT_MIXED),
        # gap 0.4 - 0.25 = 0.15: neither close nor large
        (0.4, 0.25, 0.0, VERDICT_MIXED),
    ],
)
def test_memorisation_verdict_labels(train_f1, eval_f1, copy, expected):
    assert _verdict(train_f1, eval_f1, copy)["verdict"] == expected


def test_memorisation_verdict_text_is_one_sentence_with_the_numbers():
    result = _verdict(0.9, 0.3, 0.7)
    text = result["text"]
    assert set(result) == {"verdict", "text"}
    for number in ("0.90", "0.30", "0.60", "70%"):
        assert number in text
    assert text.endswith(".")
    assert ". " not in text  # a single sentence
    assert "memoris" in text


def test_memorisation_verdict_accepts_answer_metrics_dicts():
    train_scores = answer_metrics(["paris", "berlin"], ["Paris", "Berlin"])
    eval_scores = answer_metrics(["paris", "rome"], ["Paris", "Rome"])
    # train F1 1.0, eval F1 1.0, gap 0 -> learned
    assert memorisation_verdict(train_scores, eval_scores, 0.0)["verdict"] == (
        VERDICT_LEARNED
    )
