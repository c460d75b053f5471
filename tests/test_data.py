"""Tests for gpt2tune.data.load: the bad-input corpus plus the parts of the API the corpus can't reach."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ is not a package; make the corpus importable

from bad_inputs import CASES, CASES_BY_NAME, Case, write_case  # noqa: E402
from gpt2tune.data.load import (  # noqa: E402
    DataReport, QAData, load_qa_data, read_table, suggest_columns, write_rejected_csv)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path, **kwargs) -> str:
    """The ValueError message, checked to be the one-line kind users can read."""
    with pytest.raises(ValueError) as caught:
        load_qa_data(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, f"message spans lines: {message!r}"
    assert message.startswith(f"{Path(path).name}: "), f"message must start with the file name: {message!r}"
    return message


def assert_consistent(data: QAData) -> None:
    """What must hold for every file the loader accepts."""
    report, frame = data.report, data.frame
    assert list(frame.columns) == ["question", "answer"]
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    assert frame.notna().all().all()
    assert all(isinstance(v, str) for v in frame["question"].tolist() + frame["answer"].tolist())
    assert (frame["question"] == frame["question"].str.strip()).all()
    assert (frame["answer"].str.strip() != "").all() and (frame["question"].str.strip() != "").all()
    assert report.rows_kept == len(frame) > 0
    assert report.rows_read == report.rows_kept + report.dropped_empty + report.dropped_duplicates
    assert len(data.rejected) == report.dropped_empty + report.dropped_duplicates
    assert list(data.rejected.columns[:2]) == ["row", "reason"]
    assert report.question_column in report.columns_found and report.answer_column in report.columns_found
    assert report.source in report.summary()

# -----------------------------------------------------------------------------
# the corpus


def test_corpus_covers_the_required_inputs():
    required = {
        "empty_file", "header_only", "binary_png", "utf8_bom", "utf16_bom", "cp1252_accents_quotes",
        "semicolon_csv", "tab_tsv", "header_case_and_spaces", "extra_columns", "missing_answer", "missing_both",
        "duplicate_columns", "prompt_response", "best_answer", "nan_and_empty_cells", "whitespace_only_cells",
        "quoted_commas_newlines", "unbalanced_quote", "too_many_fields", "duplicated_rows",
        "same_question_different_answers", "question_equals_answer", "very_long_row", "one_row", "json_array",
        "jsonl", "malformed_jsonl", "csv_containing_json", "na_none_literals_kept", "numeric_cells",
        "only_whitespace", "pipe_separated",
    }
    assert len(CASES) >= 32
    assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"
    assert required <= set(CASES_BY_NAME), f"missing: {required - set(CASES_BY_NAME)}"
    for case in CASES:
        assert (case.expect_error is None) == (case.check is not None), f"{case.name}: need exactly one of error/check"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_case(case: Case, tmp_path):
    path = write_case(case, tmp_path)
    if case.expect_error is not None:
        message = load_error(path)
        assert case.expect_error in message, f"expected {case.expect_error!r} in {message!r}"
        return
    data = load_qa_data(path)
    assert_consistent(data)
    if case.check is not None:
        case.check(data)

# -----------------------------------------------------------------------------
# column mapping


@pytest.mark.parametrize("columns, expected", [
    (["question", "answer"], ("question", "answer")),
    ([" Question ", "ANSWER"], (" Question ", "ANSWER")),
    (["id", "answer", "question"], ("question", "answer")),
    (["prompt", "response"], ("prompt", "response")),
    (["prompt", "completion"], ("prompt", "completion")),
    (["input", "output"], ("input", "output")),
    (["instruction", "input", "output"], ("instruction", "output")),
    (["query", "reply"], ("query", "reply")),
    (["Q", "A"], ("Q", "A")),
    (["Question Title", "Best Answer", "Votes"], ("Question Title", "Best Answer")),
    (["question_text", "answer_text"], ("question_text", "answer_text")),
    (["text", "label"], ("text", "label")),
    (["user", "assistant"], ("user", "assistant")),
    (["question", "Answer 1", "Answer 2"], ("question", None)),  # a tie is not a confident answer
    (["foo", "bar"], (None, None)),
    (["question", "notes"], ("question", None)),
    ([], (None, None)),
])
def test_suggest_columns(columns, expected):
    assert suggest_columns(columns) == expected


def test_given_columns_are_matched_ignoring_case_and_spaces(tmp_path):
    path = write(tmp_path, "data.csv", "Frage,Antwort,question\nq,a,other\n")
    data = load_qa_data(path, question_column=" frage", answer_column="ANTWORT ")
    assert (data.report.question_column, data.report.answer_column) == ("Frage", "Antwort")
    assert data.frame.values.tolist() == [["q", "a"]]
    assert not any("as the question" in w for w in data.report.warnings)  # the user chose; nothing to tell


def test_given_column_may_be_only_one_of_the_two(tmp_path):
    path = write(tmp_path, "data.csv", "Frage,answer\nq,a\n")
    data = load_qa_data(path, question_column="Frage")
    assert (data.report.question_column, data.report.answer_column) == ("Frage", "answer")


def test_given_column_that_does_not_exist_names_it_and_the_columns_found(tmp_path):
    path = write(tmp_path, "data.csv", "question,answer\nq,a\n")
    message = load_error(path, answer_column="reply")
    assert "column 'reply' (--answer-column) not found (columns found: question, answer)" in message


def test_same_column_for_question_and_answer_is_refused(tmp_path):
    path = write(tmp_path, "data.csv", "question,answer\nq,a\n")
    assert "both name column 'answer'" in load_error(path, question_column="answer", answer_column="Answer")


def test_duplicate_headers_only_matter_when_used(tmp_path):
    path = write(tmp_path, "data.csv", "question,answer,notes,notes\nq,a,n1,n2\n")
    data = load_qa_data(path)
    assert data.report.columns_found == ["question", "answer", "notes", "notes"]
    assert "duplicate column 'notes'" in load_error(path, answer_column="notes")


def test_read_table_names_are_accepted_as_columns(tmp_path):
    path = write(tmp_path, "data.csv", "question,,answer\nq,chosen,a\n")
    frame, info = read_table(path)
    assert list(frame.columns) == ["question", "Unnamed: 1", "answer"]
    data = load_qa_data(path, answer_column="Unnamed: 1")
    assert data.frame.values.tolist() == [["q", "chosen"]]

# -----------------------------------------------------------------------------
# read_table


def test_read_table_returns_raw_strings_and_what_was_detected(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes("Prompt\tResponse\tscore\n  hi \t007\t1.50\n\tNA\t\n".encode("utf-16"))
    frame, info = read_table(path)
    assert {k: info[k] for k in ("encoding", "delimiter", "file_format")} == {
        "encoding": "utf-16", "delimiter": "\t", "file_format": "tsv"}
    assert info["columns_found"] == ["Prompt", "Response", "score"]
    assert frame.values.tolist() == [["  hi ", "007", "1.50"], ["", "NA", ""]]  # untouched: no strip, no NaN


def test_read_table_json(tmp_path):
    frame, info = read_table(write(tmp_path, "data.json", '[{"q": "x", "a": 1.5}, {"q": "y"}]'))
    assert info["file_format"] == "json" and info["delimiter"] is None
    assert frame["a"].tolist()[0] == "1.5" and pd.isna(frame["a"].tolist()[1])

# -----------------------------------------------------------------------------
# rejected rows


def test_rejected_rows_keep_row_numbers_reasons_and_original_cells(tmp_path):
    text = ('question,answer,source\n'
            'q1,a1,web\n'             # row 2 kept
            '"multi\nline",,book\n'   # row 3: a spreadsheet shows one row, however many lines
            ',a3,web\n'               # row 4
            '\n'                      # row 5
            'q1,a1,copy\n'            # row 6 duplicate of row 2
            'q7,a7,web\n')            # row 7 kept
    data = load_qa_data(write(tmp_path, "data.csv", text))
    assert data.frame.values.tolist() == [["q1", "a1"], ["q7", "a7"]]
    rejected = data.rejected
    assert list(rejected.columns) == ["row", "reason", "question", "answer", "source"]
    assert rejected["row"].tolist() == [3, 4, 5, 6]
    assert rejected["reason"].tolist() == ["empty answer", "empty question", "blank row", "duplicate of row 2"]
    assert rejected["source"].tolist()[0] == "book" and rejected["question"].tolist()[0] == "multi\nline"

    out = write_rejected_csv(data, tmp_path / "out" / "rejected.csv")
    assert out == str(tmp_path / "out" / "rejected.csv")
    assert Path(out).read_bytes().startswith(b"\xef\xbb\xbf")  # BOM, so Excel reads UTF-8
    back = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert back["row"].tolist() == ["3", "4", "5", "6"]
    assert back["reason"].tolist() == rejected["reason"].tolist()
    assert back["question"].tolist()[0] == "multi\nline"


def test_write_rejected_csv_into_a_folder_and_with_nothing_rejected(tmp_path):
    data = load_qa_data(write(tmp_path, "faq.csv", "question,answer\nq,a\n"))
    out = write_rejected_csv(data, tmp_path)
    assert Path(out).name == "faq_rejected.csv"
    back = pd.read_csv(out, encoding="utf-8-sig")
    assert list(back.columns) == ["row", "reason", "question", "answer"] and len(back) == 0


def test_original_row_and_reason_columns_do_not_clash(tmp_path):
    data = load_qa_data(write(tmp_path, "data.csv", "row,reason,question,answer\n1,x,q,\n2,y,q,a\n"))
    assert list(data.rejected.columns) == ["row", "reason", "row (original)", "reason (original)", "question", "answer"]
    assert data.rejected.iloc[0].tolist() == [2, "empty answer", "1", "x", "q", ""]


def test_jsonl_rows_are_line_numbers(tmp_path):
    text = '{"question": "q", "answer": "a"}\n\n{"question": "", "answer": "a"}\n'
    data = load_qa_data(write(tmp_path, "data.jsonl", text))
    assert data.rejected["row"].tolist() == [3]

# -----------------------------------------------------------------------------
# options and limits


def test_keep_duplicates_when_asked(tmp_path):
    data = load_qa_data(write(tmp_path, "data.csv", "question,answer\nq,a\nq,a\n"), drop_duplicates=False)
    assert data.report.rows_kept == 2 and data.report.dropped_duplicates == 0
    assert any("drop_duplicates=False" in w for w in data.report.warnings)


def test_max_bytes(tmp_path):
    path = write(tmp_path, "big.csv", "question,answer\n" + "q,a\n" * 1000)
    size = path.stat().st_size
    message = load_error(path, max_bytes=1000)
    assert f"{size:,} bytes" in message and "1,000 bytes" in message and "max_bytes" in message
    assert load_qa_data(path, max_bytes=size, drop_duplicates=False).report.rows_kept == 1000
    with pytest.raises(ValueError, match="over the limit"):
        read_table(path, max_bytes=10)


def test_missing_file_and_folder_are_value_errors(tmp_path):
    assert "file not found" in load_error(tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    assert "is a folder" in load_error(tmp_path / "dir.csv")


def test_accepts_str_paths_and_upload_objects(tmp_path):
    path = write(tmp_path, "data.csv", "question,answer\nq,a\n")

    class Upload:  # what upload widgets hand over: a temp file object with .name
        name = str(path)

    assert load_qa_data(str(path)).report.rows_kept == 1
    assert load_qa_data(Upload()).report.source == "data.csv"


def test_summary_mentions_counts_and_warnings(tmp_path):
    data = load_qa_data(write(tmp_path, "data.csv", "prompt,response\nq,a\nq,a\n,x\n"))
    summary = data.report.summary()
    assert "kept 1 of 3 rows" in summary and "1 empty, 1 duplicate" in summary
    assert summary.count("warning: ") == len(data.report.warnings) >= 3
    assert isinstance(data.report, DataReport)


def test_large_generated_csv_loads_correctly(tmp_path):
    n = 200_000
    i = np.arange(n)
    question = pd.Series("What is item " + i.astype(str) + "?")
    answer = pd.Series("Item " + i.astype(str) + ", obviously.")
    answer[i % 1000 == 7] = "   "                   # 200 empty answers
    question[i % 1000 == 9] = question[i % 1000 == 8].to_numpy()  # 200 exact duplicates of the row before
    answer[i % 1000 == 9] = answer[i % 1000 == 8].to_numpy()
    path = tmp_path / "big.csv"
    pd.DataFrame({"Question": question, "Answer": answer}).to_csv(path, index=False)

    data = load_qa_data(path)
    report = data.report
    assert (report.rows_read, report.dropped_empty, report.dropped_duplicates) == (n, 200, 200)
    assert report.rows_kept == n - 400 == len(data.frame)
    assert data.frame.iloc[-1].tolist() == [f"What is item {n - 1}?", f"Item {n - 1}, obviously."]
    assert data.rejected["row"].iloc[0] == 7 + 2 and data.rejected["reason"].iloc[1] == "duplicate of row 10"


def test_cell_bigger_than_the_csv_module_limit(tmp_path):
    # the csv module (used to sniff and to find line numbers) stops at 128 KiB per cell; pandas does not
    huge = "y" * 300_000
    data = load_qa_data(write(tmp_path, "data.csv", f"question;answer\nq;{huge}\nq2;a2\n"))
    assert data.report.delimiter == ";" and data.frame["answer"].tolist() == [huge, "a2"]
    message = load_error(write(tmp_path, "bad.csv", f"question,answer\nq,{huge}\nq2,a2,extra\n"))
    assert "has 3 fields" in message and len(message) < 300


def test_json_columns_as_lists_and_single_object(tmp_path):
    data = load_qa_data(write(tmp_path, "cols.json", '{"question": ["q1", "q2"], "answer": ["a1", "a2"]}'))
    assert data.frame.values.tolist() == [["q1", "a1"], ["q2", "a2"]]
    data = load_qa_data(write(tmp_path, "one.json", '{"question": "q", "answer": "a"}'))
    assert data.frame.values.tolist() == [["q", "a"]]
