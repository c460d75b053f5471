"""Real data handled as a careful person would: the length policy, answer lists, one duplicate and
leakage definition, empty normalised answers, and content warnings (HTML, language, invisible
characters). Expected numbers are computed here, with the tokenizer and by hand, not by the code
under test."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import GSM8K_CSV, PUBMEDQA_CSV, ROOT

from gpt2tune.data.answers import expand_answers, references_of
from gpt2tune.data.length import choose_max_length
from gpt2tune.data.load import load_qa_data
from gpt2tune.data.prep import split_frame
from gpt2tune.data.report import dataset_report
from gpt2tune.evaluation.metrics import answer_metrics, copy_rate, exact_match, rouge_l, token_f1
from gpt2tune.model import load_tokenizer
from gpt2tune.paths import TOKENIZER_DIR

@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(TOKENIZER_DIR))


def whole_lengths(tokenizer, questions, answers) -> list[int]:
    """Counted directly: 'Question: q\\nAnswer: a' + end-of-text, as the template spells it."""
    return [len(tokenizer(f"Question: {q.strip()}\nAnswer:")["input_ids"])
            + len(tokenizer(" " + a.strip())["input_ids"]) + 1 for q, a in zip(questions, answers)]


def expected_auto(lengths, context=1024) -> int:
    """Smallest multiple of 64 that at least 99 % of the lengths fit, capped at the context."""
    for candidate in range(64, 100_000, 64):
        if sum(n <= candidate for n in lengths) >= 0.99 * len(lengths):
            return min(candidate, context)
    raise AssertionError


def long_answer_rows(n_rows: int, max_join: int, seed: int = 0) -> list[tuple[str, str]]:
    """pubmedqa questions with answers made long by joining 1..max_join consecutive answers."""
    rows = list(csv.DictReader(PUBMEDQA_CSV.open(encoding="utf-8")))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_rows):
        k = int(rng.integers(1, max_join + 1))
        answer = " ".join(rows[(i + j) % len(rows)]["answer"] for j in range(k))
        out.append((rows[i]["question"], answer))
    return out


def write_csv(path, rows, header=("question", "answer")):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_cli(*args, timeout=240):
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "gpt2tune", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))


# --- length policy --------------------------------------------------------------------------------


def test_auto_length_is_the_smallest_multiple_of_64_fitting_99_percent():
    lengths = list(range(1, 201))  # 99 % of 200 = 198 examples: 198 fits them, next multiple of 64 is 256
    policy = choose_max_length(lengths)
    assert policy.max_length == 256 and policy.fitting == 200 and policy.auto
    lengths = [100] * 99 + [700]  # exactly 99 % fit 128
    policy = choose_max_length(lengths)
    assert (policy.max_length, policy.fitting, policy.over_max_length) == (128, 99, 1)
    assert policy.coverage == 0.99
    # 2 of 100 over the context: auto caps at 1024 and says what 99 % would need
    policy = choose_max_length([50] * 98 + [1500, 1600])
    assert (policy.max_length, policy.over_context, policy.needed) == (1024, 2, 1536)  # 99th: 1500
    assert "would need 1536 tokens" in policy.summary()
    assert "2 examples are longer than the model's context of 1024" in policy.summary()


def test_stated_coverage_is_never_rounded_up():
    policy = choose_max_length([10] * 9896 + [2000] * 104, requested=64)  # 98.96 %
    assert "fits 9,896 of 10,000 examples whole (98.9%)" in policy.summary()


def test_set_length_over_the_context_is_one_clear_line():
    with pytest.raises(ValueError, match="max_length 2048 is longer than the model's context of 1024"):
        choose_max_length([10], requested=2048)


@pytest.mark.slow
def test_check_proposes_a_length_that_truly_covers_99_percent(tokenizer, tiny_model_dir, tmp_path):
    rows = long_answer_rows(300, max_join=8)
    path = write_csv(tmp_path / "long.csv", rows)
    lengths = whole_lengths(tokenizer, *zip(*rows))
    chosen = expected_auto(lengths)
    assert sum(n > 256 for n in lengths) > 100  # the old default would cut a third or more
    fitting = sum(n <= chosen for n in lengths)
    result = run_cli("check", "--data", path, "--base-model", tiny_model_dir)
    assert result.returncode == 0, result.stderr
    assert (f"max_length {chosen} (auto: the smallest multiple of 64 fitting 99% of examples): "
            f"fits {fitting:,} of {len(rows):,} examples whole") in result.stdout
    assert fitting >= 0.99 * len(rows)


@pytest.mark.slow
def test_check_says_truthfully_when_the_context_cannot_cover_99_percent(tokenizer, tiny_model_dir, tmp_path):
    rows = long_answer_rows(60, max_join=4) + long_answer_rows(5, max_join=1)
    singles = [a for _, a in long_answer_rows(60, max_join=1)]  # one pubmedqa answer each (~50 tokens)
    rows += [(f"Why {i}?", " ".join(singles[i:i + 30])) for i in range(4)]  # 30 answers: past 1,024 tokens
    path = write_csv(tmp_path / "too_long.csv", rows)
    lengths = whole_lengths(tokenizer, *zip(*rows))
    over_context = sum(n > 1024 for n in lengths)
    assert over_context == 4 and over_context > 0.01 * len(rows)
    fitting = sum(n <= 1024 for n in lengths)
    result = run_cli("check", "--data", path, "--base-model", tiny_model_dir, "--max-length", "auto",
                     "--overlong", "drop")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "max_length 1024 (auto" in out and f"fits {fitting:,} of {len(rows):,} examples whole" in out
    assert f"{over_context} examples are longer than the model's context of 1024 tokens and can never fit" in out
    assert "dropped from training and evaluation (overlong=drop)" in out


def test_report_uses_the_model_context_and_a_set_length(tokenizer):
    rows = long_answer_rows(50, max_join=3)
    frame = pd.DataFrame(rows, columns=["question", "answer"])
    lengths = whole_lengths(tokenizer, frame["question"], frame["answer"])
    report = dataset_report(frame, tokenizer, 128, 0.1, 0, languages=False)
    assert report.max_length == 128 and report.over_max_length == sum(n > 128 for n in lengths)
    assert report.suggested_max_length == expected_auto(lengths)
    small = dataset_report(frame, tokenizer, 0, 0.1, 0, context=256, languages=False)
    assert small.max_length == min(256, expected_auto(lengths)) and small.length.context == 256


# --- answer lists ---------------------------------------------------------------------------------

LIST_ROWS = [
    {"question": "When did Apollo 17 land?", "answer": ["14 December 1972 UTC", "December 1972"]},
    {"question": "Who wrote Hamlet?", "answer": ["William Shakespeare", "Shakespeare"]},
    {"question": "What is the boiling point of water?", "answer": "100 degrees Celsius"},
    {"question": "Largest planet?", "answer": ["Jupiter"]},
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_list_answers_train_on_the_first_and_keep_every_reference(tmp_path):
    data = load_qa_data(write_jsonl(tmp_path / "nq.jsonl", LIST_ROWS))
    assert list(data.frame["answer"]) == ["14 December 1972 UTC", "William Shakespeare", "100 degrees Celsius",
                                          "Jupiter"]
    assert references_of(data.frame) == [["14 December 1972 UTC", "December 1972"],
                                         ["William Shakespeare", "Shakespeare"], ["100 degrees Celsius"], ["Jupiter"]]
    assert data.report.list_answers == 2 and data.report.references == 6  # 2 + 2 + 1 + 1
    assert any(w.startswith("3 of 4 answer cells in 'answer' are lists, holding 5 answers (2 cells with more than "
                            "one): training uses the first") for w in data.report.warnings)
    assert not any(a.startswith("[") for a in data.frame["answer"])
    each = expand_answers(data.frame, "each")
    assert list(each["answer"]) == ["14 December 1972 UTC", "December 1972", "William Shakespeare", "Shakespeare",
                                    "100 degrees Celsius", "Jupiter"]
    assert list(each["question"]).count("Who wrote Hamlet?") == 2


def test_scores_take_the_best_reference():
    refs = [["14 December 1972 UTC", "December 1972"], ["William Shakespeare", "Shakespeare"]]
    predictions = ["December 1972", "Shakespeare wrote it"]
    scores = answer_metrics(predictions, refs)
    # row 1: EM 1 against the second reference. Row 2: "shakespeare wrote it" vs "shakespeare":
    # P = 1/3, R = 1 -> F1 = 0.5; vs "william shakespeare": P = 1/3, R = 1/2 -> 0.4. Best: 0.5.
    assert scores["exact_match"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx((1.0 + 0.5) / 2)
    # ROUGE-L row 2: LCS 1, P = 1/3, R = 1/1 -> 0.5 (vs 1/2 -> 0.4)
    assert scores["rouge_l"] == pytest.approx((1.0 + 0.5) / 2)
    single = answer_metrics(predictions, [r[0] for r in refs])  # the first reference only
    # row 1: [december, 1972] vs [14, december, 1972, utc]: P = 1, R = 1/2 -> F1 = 2/3; row 2: 0.4
    assert single["exact_match"] == 0.0 and single["f1"] == pytest.approx((2 / 3 + 0.4) / 2)


# --- empty normalised answers ---------------------------------------------------------------------


def test_answers_that_normalise_to_nothing_never_match():
    assert exact_match(":", "---") == 0.0 and token_f1(":", "---") == 0.0
    assert token_f1("", "A+") == 0.0 and rouge_l("", "A+") == 0.0
    # an untrained model's ':' is no copy of the training answers '---', ')' or 'A+'
    assert copy_rate([":", "", "cat"], ["---", ")", "A+", "dog"]) == 0.0
    assert copy_rate(["the cat"], ["---", "cat"]) == 1.0  # a real copy still counts


# --- duplicates and leakage: one definition -------------------------------------------------------


def test_loader_and_report_agree_on_duplicates(tokenizer, tmp_path):
    rows = [("What is X?", "An x."), ("What is X?", "An x."),  # exact duplicate row
            ("what  is x", "an X"),  # same once normalised
            ("What is X?", "Something else."),  # same question, a different answer
            ("What is Y?", "A y."), ("What is Y?", "Another y."), ("What is Z?", "A z.")]
    data = load_qa_data(write_csv(tmp_path / "dup.csv", rows))
    report = dataset_report(data.frame, tokenizer, 0, 0.0, 0, duplicates=data.report.duplicates, languages=False)
    # by hand: exact repeats 1 (row 2); normalised repeats 2 (rows 2 and 3); distinct questions asked
    # more than once: "what is x", "what is y" = 2; repeat rows 3 + 1 = 4; conflicting: x (2 answers), y
    dup = data.report.duplicates
    assert (dup.exact_duplicate_rows, dup.normalised_duplicate_rows) == (1, 2)
    assert (dup.repeated_questions, dup.repeated_question_rows, dup.conflicting_questions) == (2, 4, 2)
    assert data.report.conflicting_questions == dup.conflicting_questions == 2
    assert report.exact_duplicates == 1  # counted before the loader dropped the repeat, not 0
    assert "1 rows repeat an earlier row exactly" in report.summary()
    assert "2 distinct questions have different answers" in report.summary()


def test_leakage_counts_rows_and_distinct_questions(tokenizer):
    frame = pd.DataFrame({"question": [f"Question number {i % 30}?" for i in range(60)],
                          "answer": [f"Answer {i}." for i in range(60)]})
    report = dataset_report(frame, tokenizer, 0, 0.25, 3, languages=False)
    train, held_out = split_frame(frame, 0.25, 3)
    leaked = held_out[held_out["question"].isin(set(train["question"]))]
    assert report.leakage.leaked_rows == len(leaked) > 0
    assert report.leakage.leaked_questions == leaked["question"].nunique()
    assert (f"{len(leaked)} of {len(held_out)} eval rows" in report.summary()
            and f"{leaked['question'].nunique()} distinct questions" in report.summary())


# --- content: invisible characters, HTML, languages -----------------------------------------------


def test_zero_width_spaces_are_removed_and_counted(tmp_path):
    rows = [("What\u200b is X?", "An\u200b\u200b x."), ("What is X?", "An x."), ("Why\ufeff?", "Be\u00adcause.")]
    data = load_qa_data(write_csv(tmp_path / "zw.csv", rows))
    assert data.report.invisible_chars == 5 and data.report.invisible_cells == 4
    assert data.report.rows_kept == 2 and data.report.dropped_duplicates == 1  # identical once cleaned
    assert list(data.frame["question"]) == ["What is X?", "Why?"]
    assert not any(ch in text for text in data.frame.to_numpy().ravel() for ch in "\u200b\ufeff\u00ad")
    assert any("Removed 5 invisible or control character(s)" in w and "from 4 cell(s)" in w
               for w in data.report.warnings)


HTML_ROWS = [(f"How do I reset device {i}?",
              f'<div class="panel-inner"><p>Hold the <b>reset</b> button for {i} seconds.</p><br/><p>Then &amp; wait.</p></div>')
             for i in range(6)] + [("Plain?", "No markup, a < b and b > a.")]


def test_html_answers_are_counted_and_stripped_on_request(tmp_path):
    path = write_csv(tmp_path / "html.csv", HTML_ROWS)
    data = load_qa_data(path)
    assert data.report.html_cells == {"question": 0, "answer": 6}
    assert any("6 answer cell(s) in 'answer' hold HTML markup; set strip_html" in w for w in data.report.warnings)
    stripped = load_qa_data(path, strip_html=True)
    assert stripped.frame["answer"].iloc[2] == "Hold the reset button for 2 seconds.\nThen & wait."
    assert stripped.frame["answer"].iloc[6] == "No markup, a < b and b > a."


GERMAN = [
    ("Wie lange dauert die Lieferung nach Deutschland?", "Die Lieferung dauert in der Regel drei bis fünf Werktage."),
    ("Kann ich meine Bestellung stornieren?", "Ja, solange die Bestellung noch nicht versendet wurde."),
    ("Welche Zahlungsarten werden akzeptiert?", "Wir akzeptieren Kreditkarte, Überweisung und Rechnung."),
    ("Wo finde ich meine Rechnung?", "Die Rechnung finden Sie in Ihrem Kundenkonto unter Bestellungen."),
    ("Wie kann ich mein Passwort ändern?", "Öffnen Sie die Einstellungen und wählen Sie Passwort ändern."),
    ("Gibt es eine Garantie auf die Geräte?", "Alle Geräte haben zwei Jahre Garantie ab dem Kaufdatum."),
    ("Wie erreiche ich den Kundendienst?", "Der Kundendienst ist werktags von acht bis achtzehn Uhr erreichbar."),
    ("Kann ich Artikel zurückgeben?", "Sie können Artikel innerhalb von dreißig Tagen kostenlos zurückgeben."),
]
ENGLISH = [
    ("How long does delivery take?", "Delivery usually takes three to five working days."),
    ("Can I cancel my order?", "Yes, as long as the order has not been shipped yet."),
]


def test_a_file_mostly_in_german_is_flagged(tokenizer, tmp_path):
    data = load_qa_data(write_csv(tmp_path / "de.csv", GERMAN + ENGLISH))
    report = dataset_report(data.frame, tokenizer, 0, 0.0, 0)
    # 8 German rows and 2 English ones, every one long enough to tell
    assert report.languages == {"de": 8, "en": 2}
    assert report.non_english_share == pytest.approx(0.8)
    assert any("8 of 10 sampled rows (80%) are not English" in w for w in report.warnings)
    english = dataset_report(pd.DataFrame(ENGLISH * 3, columns=["question", "answer"]), tokenizer, 0, 0.0, 0)
    assert english.non_english_share == 0.0 and not english.warnings


# --- train with the defaults, then eval on the training file --------------------------------------


@pytest.fixture(scope="module")
def long_run(tiny_model_dir, tmp_path_factory):
    """`gpt2tune train` with the default (auto) max_length on long pubmedqa answers, some questions asked twice."""
    root = tmp_path_factory.mktemp("long-run")
    rows = long_answer_rows(36, max_join=10)
    rows += [(rows[i][0], f"Another answer, number {i}.") for i in range(0, 24, 2)]  # 12 repeated questions
    path = write_csv(root / "long.csv", rows)
    result = run_cli("train", "--data", path, "--base-model", tiny_model_dir, "--output-dir", root / "out",
                     "--max-steps", 3, "--batch-size", 1, "--eval-steps", 0, "--save-steps", 0,
                     "--eval-answer-samples", 2, "--lr", "2e-3", "--eval-fraction", 0.25, timeout=600)
    assert result.returncode == 0, result.stderr
    return root, path, rows, result


@pytest.mark.slow
def test_train_with_defaults_keeps_the_end_of_text_on_99_percent(long_run, tokenizer):
    root, path, rows, result = long_run
    lengths = whole_lengths(tokenizer, *zip(*rows))
    chosen = expected_auto(lengths)
    fitting_model = [n for n in lengths if n <= 1024]
    assert sum(n <= chosen for n in fitting_model) >= 0.99 * len(fitting_model)
    assert max(lengths) > 256  # the old default of 256 would have cut these
    metrics = json.loads((root / "out" / "metrics.json").read_text())
    assert metrics["max_length"] == chosen
    assert metrics["truncated_examples"] == sum(n > chosen for n in lengths)
    assert metrics["data"]["length_policy"]["fitting"] == sum(n <= chosen for n in lengths)
    assert f"max_length {chosen} (auto" in result.stderr + result.stdout

    config = json.loads((root / "out" / "gpt2tune_config.json").read_text())
    assert config["max_length"] == 0  # the setting stays auto ...
    resolved = config["resolved"]  # ... and what it meant is recorded beside it
    assert resolved["length"]["max_length"] == chosen and resolved["length"]["auto"] is True
    assert (resolved["question_column"], resolved["answer_column"]) == ("question", "answer")
    assert resolved["max_steps"] == 3 and resolved["steps_run"] == 3
    assert resolved["epochs"] == pytest.approx(metrics["epoch"])  # 3 steps: the epochs they amount to, not 3.0
    assert resolved["truncated_train"] + resolved["truncated_eval"] == metrics["truncated_examples"]
    card = (root / "out" / "README.md").read_text()
    assert f"| max_length | {chosen} (auto) |" in card and "| epochs | 3.0 |" not in card
    assert f"| epochs | {round(resolved['epochs'], 3)} |" in card
    assert "columns used: question ← `question`, answer ← `answer`" in card
    # the card states the length in the very words (and rounding) the command printed
    printed = [line.strip() for line in (result.stderr + result.stdout).splitlines()]
    length_line = next(line for line in printed if line.startswith(f"max_length {chosen} (auto"))
    assert f"- {length_line}" in card.splitlines()
    assert "chosen automatically to fit 99%" not in card


@pytest.mark.slow
def test_leakage_reaches_train_output_metrics_and_card(long_run):
    root, path, rows, result = long_run
    frame = load_qa_data(path).frame
    train, held_out = split_frame(frame, 0.25, 42)
    leaked = held_out[held_out["question"].isin(set(train["question"]))]
    assert len(leaked) > 0
    metrics = json.loads((root / "out" / "metrics.json").read_text())
    assert metrics["leaked_eval_rows"] == len(leaked)
    assert metrics["data"]["leakage"]["leaked_questions"] == leaked["question"].nunique()
    assert f"leaked_eval_rows: {len(leaked)}" in result.stdout
    assert f"leakage: {len(leaked)} of {len(held_out)} eval rows" in result.stderr
    card = (root / "out" / "README.md").read_text()
    assert f"leakage: {len(leaked)} of {len(held_out)} eval rows" in card


@pytest.mark.slow
def test_eval_on_the_training_file_says_so(long_run, tmp_path):
    root, path, rows, _ = long_run
    out = tmp_path / "eval.json"
    result = run_cli("eval", "--model", root / "out", "--data", path, "--max-samples", 4, "--output", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    frame = load_qa_data(path).frame
    train, _ = split_frame(frame, 0.25, 42)
    in_train = frame["question"].isin(set(train["question"]))
    assert "long.csv is the file this model was trained on (same SHA-256" in result.stdout
    assert report["training_file"] is True
    assert report["overlap"]["leaked_rows"] == int(in_train.sum())
    assert f"{int(in_train.sum())} of {len(frame)} rows of long.csv" in result.stdout
    run_length = json.loads((root / "out" / "gpt2tune_config.json").read_text())["resolved"]["length"]["max_length"]
    assert report["max_length"] == run_length and report["max_length_source"] == "the run's"
    assert f"kept {len(frame)} of {len(rows)} rows" in result.stdout and f"max_length {run_length}" in result.stdout
    # the rows answered are drawn at random with the run's seed, not the first ones
    answered = [s["question"] for s in report["samples"]]
    assert answered == list(frame.sample(n=4, random_state=42)["question"])
    assert answered != list(frame["question"][:4])


# --- settings ---------------------------------------------------------------------------------------


def test_auto_is_the_default_and_a_saved_record_is_not_a_setting(tmp_path):
    from gpt2tune.cli import build_parser
    from gpt2tune.config import TuneConfig

    assert TuneConfig().max_length == 0 and TuneConfig().overlong == "truncate" and TuneConfig().answer_lists == "first"
    for text, value in (("auto", 0), ("0", 0), ("384", 384)):
        assert build_parser().parse_args(["train", "--max-length", text]).max_length == value
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TuneConfig(max_length=0).to_dict(), "resolved": {"length": {"max_length": 384}}}))
    assert TuneConfig.load(path).max_length == 0  # the record of what the run resolved is not a setting


def test_overlong_drop_leaves_out_exactly_the_examples_over_the_limit(tokenizer):
    from gpt2tune.data.prep import prepare_datasets

    rows = long_answer_rows(40, max_join=4)
    frame = pd.DataFrame(rows, columns=["question", "answer"])
    lengths = whole_lengths(tokenizer, frame["question"], frame["answer"])
    over = sum(n > 192 for n in lengths)
    assert 0 < over < len(rows)
    _, _, cut = prepare_datasets(frame, frame.iloc[0:0], tokenizer, 192, True, True)
    _, _, dropped = prepare_datasets(frame, frame.iloc[0:0], tokenizer, 192, True, True, overlong="drop")
    assert (cut.truncated, cut.train_examples, cut.dropped_overlong) == (over, len(rows), 0)
    assert (dropped.truncated, dropped.train_examples, dropped.dropped_overlong) == (0, len(rows) - over, over)


@pytest.mark.slow
def test_list_answers_train_as_text_and_score_against_every_reference(tiny_model_dir, tmp_path):
    records = [{"question": f"In which year did event number {i} happen?",
                "answer": [f"{1900 + i}", f"the year {1900 + i}", f"in {1900 + i} AD"]} for i in range(28)]
    records += [{"question": f"Plain question {i}?", "answer": f"Plain answer {i}."} for i in range(4)]
    path = write_jsonl(tmp_path / "lists.jsonl", records)
    out = tmp_path / "out"
    result = run_cli("train", "--data", path, "--base-model", tiny_model_dir, "--output-dir", out, "--max-steps", 2,
                     "--batch-size", 2, "--eval-steps", 0, "--save-steps", 0, "--eval-answer-samples", 4,
                     "--eval-fraction", 0.25, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "28 of 32 answer cells in 'answer' are lists, holding 84 answers (28 cells with more than one)" in (
        result.stderr)  # 28 * 3
    samples = json.loads((out / "samples.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(samples) == metrics["answer_samples"] == 4
    by_question = {r["question"]: r["answer"] for r in records}
    best_f1 = []
    for sample in samples:
        expected = by_question[sample["question"]]
        expected = expected if isinstance(expected, list) else [expected]
        assert sample.get("references", [sample["reference"]]) == expected and sample["reference"] == expected[0]
        assert not sample["reference"].startswith("[")  # trained and scored as text, not as JSON
        best_f1.append(max(token_f1(sample["generated"], ref) for ref in expected))
    assert metrics["answer_f1"] == pytest.approx(sum(best_f1) / len(best_f1))


@pytest.mark.parametrize("collide", [False, True])
def test_normalised_codes_are_equal_exactly_when_the_normalised_texts_are(monkeypatch, collide):
    """Codes stand in for normalised text in every duplicate, conflict and leakage count: equal codes must
    mean equal `normalise` output, across columns and slices, even when every hash collides."""
    import gpt2tune.data.normalise as normalise_module
    from gpt2tune.data.normalise import BLANK, normalise, normalised_codes

    gsm = pd.read_csv(GSM8K_CSV).head(300)
    questions = list(gsm["question"]) + ["What is X?", "what  is x", "Straße?", "STRASSE", "!!!", "", "Ünïcode", "ünïcode."]
    answers = list(gsm["answer"].str[:20]) + ["Yes.", "yes", "what is x", "Nein", "?", "...", "no", "No"]
    monkeypatch.setattr(normalise_module, "SLICE_ROWS", 7)  # many slices, cells repeating across them
    if collide:  # every text hashes alike: only the exact comparison can tell them apart
        monkeypatch.setattr(normalise_module.pd.util, "hash_array", lambda values, categorize=False:
                            np.zeros(len(values), dtype=np.uint64))
    q_codes, a_codes = normalised_codes(pd.Series(questions), answers)
    texts = list(normalise(questions)) + list(normalise(answers))
    codes = list(q_codes) + list(a_codes)
    for i in range(len(texts)):
        assert (codes[i] == BLANK) == (texts[i] == "")
        for j in range(i + 1, len(texts)):
            assert (codes[i] == codes[j]) == (texts[i] == texts[j]), (texts[i], texts[j])
    assert q_codes[-8] == q_codes[-7] != q_codes[-6] and q_codes[-6] == q_codes[-5]  # case, spacing, ß
    assert a_codes[-6] == q_codes[-8]  # one code space: an answer equal to a question shares its code
