"""What was asked (max_length 0 = auto) and what the run resolved (the length used) are two things, and
every surface shows the resolved one: `check`'s memory estimate, its counts after `--overlong drop`,
truncation per split, and the run's own record.

The data is built so that every count is known by construction: short rows fit 64 tokens, long rows
(an answer of 150 words) never do, and the model's context (1,024) holds both."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from conftest import SAMPLE_CSV

from gpt2tune.cli import main

LONG = " ".join(["word"] * 150)  # well over 64 tokens, well under 1,024


def write_rows(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        writer.writerows(rows)
    return path


def constructed(tmp_path) -> tuple[Path, list[tuple[str, str]]]:
    """40 questions, each once short and once long; the first 12 also with a second short answer."""
    rows = []
    for i in range(40):
        rows += [(f"What is item {i}?", f"Item {i} is short."), (f"What is item {i}?", f"{LONG} {i}")]
        if i < 12:
            rows.append((f"What is item {i}?", f"Item {i} is also short."))
    return write_rows(tmp_path / "mixed.csv", rows), rows


def check(capsys, *argv) -> str:
    code = main(["check", *map(str, argv)])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def split_of(rows, eval_fraction=0.25, seed=42):
    """The rows of the split `train` uses (positions from its one split function)."""
    from gpt2tune.data.prep import split_positions

    train_at, eval_at = split_positions(len(rows), eval_fraction, seed)
    return [rows[i] for i in train_at], [rows[i] for i in eval_at]


def test_memory_estimate_is_for_the_length_used_not_the_auto_zero(capsys, tiny_model_dir):
    out = check(capsys, "--csv", SAMPLE_CSV, "--base-model", tiny_model_dir)
    used = int(re.search(r"^max_length (\d+) \(auto", out, re.M).group(1))
    assert used > 0 and f"batch size 8 × {used} tokens" in out and "× 0 tokens" not in out
    set_out = check(capsys, "--csv", SAMPLE_CSV, "--base-model", tiny_model_dir, "--max-length", 512)
    assert "batch size 8 × 512 tokens" in set_out

    def activations(text):
        return float(re.search(r"full: ~[\d.]+ GB .*? activations ([\d.]+)", text).group(1))

    assert activations(set_out) > activations(out)  # longer rows, more activations


def test_leakage_is_counted_on_the_examples_an_overlong_drop_keeps(capsys, tiny_model_dir, tmp_path):
    path, rows = constructed(tmp_path)
    train, held_out = split_of(rows)
    short = lambda part: [row for row in part if not row[1].startswith(LONG)]  # noqa: E731
    kept_train, kept_eval = short(train), short(held_out)
    trained_questions = {q for q, _ in kept_train}
    leaked = [q for q, _ in kept_eval if q in trained_questions]
    everything_leaked = [q for q, _ in held_out if q in {q for q, _ in train}]
    assert len(kept_eval) < len(held_out) and len(leaked) < len(everything_leaked)  # the drop matters here

    out = check(capsys, "--csv", path, "--base-model", tiny_model_dir, "--max-length", 64, "--overlong", "drop",
                "--eval-fraction", 0.25)
    assert f"eval: {len(kept_eval)} examples" in out
    assert f"leakage: {len(leaked)} of {len(kept_eval)} eval rows" in out
    assert f"{len(set(leaked))} distinct questions" in out


def test_truncation_is_counted_per_split(capsys, tiny_model_dir, tmp_path):
    path, rows = constructed(tmp_path)
    train, held_out = split_of(rows)
    cut = lambda part: sum(row[1].startswith(LONG) for row in part)  # noqa: E731
    out = check(capsys, "--csv", path, "--base-model", tiny_model_dir, "--max-length", 64, "--eval-fraction", 0.25)
    assert (f"{cut(train) + cut(held_out)} examples ({cut(train)} train, {cut(held_out)} eval) were longer than "
            "max_length=64 tokens and were truncated") in out


@pytest.mark.slow
def test_a_run_records_what_it_resolved_beside_what_was_asked(tiny_model_dir, tmp_path, capsys):
    from gpt2tune.runs.resolved import load_run

    path, rows = constructed(tmp_path)
    train, held_out = split_of(rows, seed=7)
    out_dir = tmp_path / "run"
    code = main(["train", "--csv", str(path), "--base-model", str(tiny_model_dir), "--output-dir", str(out_dir),
                 "--max-steps", "2", "--batch-size", "2", "--eval-steps", "0", "--save-steps", "0",
                 "--eval-answer-samples", "0", "--eval-fraction", "0.25", "--max-length", "0", "--seed", "7"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    saved = json.loads((out_dir / "run.json").read_text())
    assert saved["config"]["max_length"] == 0  # as asked
    run = load_run(out_dir)
    assert run.settings.max_length == 0 and run.resolved.max_length == saved["resolved"]["length"]["max_length"]
    # auto fits 99 % whole: the long rows (a third of them) need more than 64, so auto chose past them
    assert run.resolved.max_length > 64 and run.resolved.truncated_train == run.resolved.truncated_eval == 0
    assert (run.resolved.train_examples, run.resolved.eval_examples) == (len(train), len(held_out))
    assert run.resolved.max_steps == 2 and run.resolved.steps_run == 2
    # the command, the card and the record state the length in one wording (and one rounding)
    said = next(line.strip() for line in (printed.err + printed.out).splitlines()
                if line.strip().startswith(f"max_length {run.resolved.max_length} (auto"))
    assert said == run.resolved.length_line()
    card = (out_dir / "README.md").read_text()
    assert f"- {said}" in card.splitlines() and "chosen automatically" not in card
    assert f"| max_length | {run.resolved.max_length} (auto) |" in card

    # eval reads the same record: the run's seed and its split (not a default of its own)
    report = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out_dir), "--csv", str(path), "--max-samples", "0", "--output",
                 str(report)]) == 0
    result = json.loads(report.read_text())
    trained = {q for q, _ in train}
    assert result["seed"] == 7 and result["max_length"] == run.resolved.max_length
    assert result["overlap"]["leaked_rows"] == sum(q in trained for q, _ in rows)


def test_list_answers_are_counted_in_one_unit_and_no_change_goes_uncounted(tmp_path):
    from gpt2tune.data.answers import references_of
    from gpt2tune.data.load import load_qa_data

    records = [{"question": "Capital of France?", "answer": ["Paris", "Paris", "the\u00a0city of\r\nParis"]},
               {"question": "Largest planet?", "answer": ["Jupiter"]},
               {"question": "Boiling point?", "answer": "100 degrees"}]
    path = tmp_path / "lists.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    data = load_qa_data(path)
    # an item keeps its text as written (a non-breaking space, a line break), as a plain cell does
    assert references_of(data.frame)[0] == ["Paris", "the\u00a0city of\r\nParis"]
    assert (data.report.list_cells, data.report.list_answers, data.report.list_repeats) == (2, 1, 1)
    assert ("2 of 3 answer cells in 'answer' are lists, holding 3 answers (1 cells with more than one); "
            "1 answers repeated within their list were removed") in " ".join(data.report.warnings)
