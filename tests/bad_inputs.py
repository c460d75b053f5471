"""
A corpus of malformed or awkward question/answer files, as bytes, so that the
data, CLI and app tests all feed the loader the same inputs.

Each Case either must be refused with a one-line ValueError containing
`expect_error`, or must load, after which `check(data)` asserts what came out.
Write one to disk with write_case(case, folder).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    content: bytes
    expect_error: str | None = None              # substring of the one-line ValueError message
    check: Callable[[Any], None] | None = None   # called with the QAData when the file must load

    def __repr__(self) -> str:  # pytest ids and failure messages: the name says it all
        return f"Case({self.name})"


def write_case(case: Case, folder) -> Path:
    path = Path(folder) / case.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.content)
    return path

# -----------------------------------------------------------------------------
# checks: small factories so each case states only what is special about it


def expect(rows=None, first=None, **report_fields) -> Callable[[Any], None]:
    """Check report fields by name, the frame's (question, answer) pairs, and/or its first pair."""
    def check(data) -> None:
        for name, wanted in report_fields.items():
            got = getattr(data.report, name)
            assert got == wanted, f"report.{name}: expected {wanted!r}, got {got!r}"
        pairs = list(zip(data.frame["question"], data.frame["answer"]))
        if rows is not None:
            assert pairs == rows, f"frame rows: expected {rows!r}, got {pairs!r}"
        if first is not None:
            assert pairs[0] == first, f"first row: expected {first!r}, got {pairs[0]!r}"
    return check


def all_of(*checks) -> Callable[[Any], None]:
    def check(data) -> None:
        for one in checks:
            one(data)
    return check


def warns(*fragments: str) -> Callable[[Any], None]:
    """Some warning mentions each fragment (case-insensitive)."""
    def check(data) -> None:
        text = " | ".join(data.report.warnings).lower()
        for fragment in fragments:
            assert fragment.lower() in text, f"no warning mentions {fragment!r}: {data.report.warnings}"
    return check


def rejected(*row_reason: tuple[int, str]) -> Callable[[Any], None]:
    """The rejected table holds exactly these (row, reason-fragment) pairs, in order."""
    def check(data) -> None:
        got = list(zip(data.rejected["row"], data.rejected["reason"]))
        assert len(got) == len(row_reason), f"rejected: expected {row_reason!r}, got {got!r}"
        for (row, reason), (want_row, fragment) in zip(got, row_reason):
            assert row == want_row and fragment in reason, f"rejected: expected {row_reason!r}, got {got!r}"
    return check


def _csv(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def _random_binary(n: int = 2048) -> bytes:
    rng = random.Random(0)  # fixed, so the corpus is the same bytes every run
    return bytes(rng.randrange(256) for _ in range(n)) + b"\x00\x00"

# -----------------------------------------------------------------------------
# the corpus

LONG_ANSWER = "x" * 100_000

CASES: list[Case] = [
    # --- nothing usable in the file
    Case("empty_file", "data.csv", b"", "the file is empty"),
    Case("only_whitespace", "data.csv", b"  \n\t\n   \r\n", "the file is empty"),
    Case("header_only", "data.csv", _csv("question,answer\n"), "no data rows"),
    Case("all_rows_empty", "data.csv", _csv("question,answer\n,\n  ,\t\nq,\n"), "no usable rows"),
    Case("binary_png", "data.csv", b"\x89PNG\r\n\x1a\n" + _random_binary(), "not a text table"),
    Case("binary_random", "data.csv", _random_binary(), "not a text table"),
    Case("xlsx_workbook", "data.xlsx", b"PK\x03\x04\x14\x00\x06\x00" + _random_binary(), "not a text table"),
    Case("nul_byte_in_text", "data.csv", _csv("question,answer\n" + "q,a\n" * 3000 + "bad\x00row,a\n"),
         "line 3,002 contains a NUL byte"),

    # --- encodings
    Case("utf8_bom", "data.csv", b"\xef\xbb\xbf" + _csv("question,answer\nCafé?,Oui ☕\n"),
         None, expect(encoding="utf-8-sig", columns_found=["question", "answer"], rows=[("Café?", "Oui ☕")])),
    Case("utf16_bom", "data.csv", _csv("question,answer\nGrüße?,Hallo ü\n", "utf-16"),
         None, expect(encoding="utf-16", rows=[("Grüße?", "Hallo ü")])),
    Case("utf16_le_without_bom", "data.csv", _csv("question,answer\nWhy?,Because\n", "utf-16-le"),
         None, expect(encoding="utf-16-le", rows=[("Why?", "Because")])),
    Case("cp1252_accents_quotes", "data.csv", _csv("question,answer\nWhat’s a café?,It’s “nice” – très\n", "cp1252"),
         None, all_of(expect(encoding="cp1252", rows=[("What’s a café?", "It’s “nice” – très")]), warns("cp1252"))),
    # a stray byte in otherwise UTF-8 text stays UTF-8 (with U+FFFD) instead of
    # garbling every accent by falling back to cp1252
    Case("utf8_with_one_stray_byte", "data.csv",
         _csv('question,answer\nÉté?,"Oui, l’été"\n') + b"bad \xff byte,ok\n",
         None, all_of(expect(encoding="utf-8", rows=[("Été?", "Oui, l’été"), ("bad \ufffd byte", "ok")]),
                      warns("invalid UTF-8 byte"))),

    # --- delimiters and quoting
    Case("semicolon_csv", "data.csv", _csv("question;answer\nHi, you?;Hello, friend\n"),
         None, expect(delimiter=";", file_format="csv", rows=[("Hi, you?", "Hello, friend")])),
    Case("tab_tsv", "data.tsv", _csv("question\tanswer\nA, B or C?\tC; always\n"),
         None, expect(delimiter="\t", file_format="tsv", rows=[("A, B or C?", "C; always")])),
    Case("pipe_separated", "data.csv", _csv("question|answer\nx, y?|z; w\nq2|a2\n"),
         None, expect(delimiter="|", rows=[("x, y?", "z; w"), ("q2", "a2")])),
    Case("excel_sep_line", "data.csv", _csv("sep=;\nquestion;answer\nq;a\n\n;empty question\n"),
         None, all_of(expect(delimiter=";", rows=[("q", "a")]), rejected((4, "blank row"), (5, "empty question")))),
    Case("quoted_commas_newlines", "data.csv",
         _csv('question,answer\n"Hello, world?","Line 1\nLine 2, with comma"\n"He said ""hi""",ok\n'),
         None, expect(rows=[("Hello, world?", "Line 1\nLine 2, with comma"), ('He said "hi"', "ok")])),
    Case("crlf_line_endings", "data.csv", _csv('question,answer\r\nq1,a1\r\n"multi\r\nline",a2\r\n'),
         None, all_of(expect(rows=[("q1", "a1"), ("multi\nline", "a2")], line_break_cells=1),
                      warns("line breaks inside 1 cell(s)"))),
    # Excel's own export: CR LF between rows, LF inside cells: no cell changes, so none is counted
    Case("crlf_rows_lf_cells", "data.csv", _csv('question,answer\r\n"two\nlines",a\r\nq,"x\ry"\r\n'),
         None, expect(rows=[("two\nlines", "a"), ("q", "x\ny")], line_break_cells=1)),
    Case("cr_only_line_endings", "data.csv", _csv('question,answer\rq1,a1\r"multi\rline",a2\r'),
         None, expect(rows=[("q1", "a1"), ("multi\nline", "a2")], line_break_cells=1)),
    Case("crlf_blank_lines_and_sep", "data.csv", _csv('\r\nsep=;\r\nquestion;answer\r\nq;a\r\n\r\n;x\r\n\r\n'),
         None, all_of(expect(delimiter=";", rows=[("q", "a")], line_break_cells=0),
                      rejected((5, "blank row"), (6, "empty question")))),
    Case("unbalanced_quote", "data.csv", _csv('question,answer\nq1,a1\n"q2,a2\nq3,a3\n'),
         "quoted cell that starts on line 3 is never closed"),
    Case("too_many_fields", "data.csv", _csv("question,answer\nq1,a1\nWhat is 2+2?,4, obviously\n"),
         "line 3 has 3 fields but the header has 2"),
    Case("too_many_fields_after_multiline_cell", "data.csv",
         _csv('question,answer\n"a\nb\nc",x\nq,a,extra\n'), "line 5 has 3 fields"),
    Case("too_few_fields", "data.csv", _csv("question,answer\nlonely question\nq2,a2\n"),
         None, all_of(expect(rows=[("q2", "a2")], dropped_empty=1), rejected((2, "empty answer")))),
    Case("trailing_delimiter_everywhere", "data.csv", _csv("question,answer,\nq,a,\n"),
         None, expect(rows=[("q", "a")], columns_found=["question", "answer", ""])),
    Case("single_column_unknown_delimiter", "data.csv", _csv("question:answer\nq:a\n"),
         "only one column"),

    # --- headers
    Case("header_case_and_spaces", "data.csv", _csv(" Question ,ANSWER \nq,a\n"),
         None, all_of(expect(question_column=" Question ", answer_column="ANSWER ", rows=[("q", "a")]),
                      lambda data: _no_warning_about_mapping(data))),
    Case("extra_columns", "data.csv", _csv("id,question,answer,source\n1,q,a,web\n"),
         None, all_of(expect(rows=[("q", "a")]), warns("ignored 2 other column(s): id, source"))),
    Case("missing_answer", "data.csv", _csv("question,notes\nq,n\n"),
         "missing column 'answer' (columns found: question, notes)"),
    Case("missing_both", "data.csv", _csv("foo,bar\n1,2\n"),
         "missing columns 'question' and 'answer' (columns found: foo, bar)"),
    Case("duplicate_columns", "data.csv", _csv("question,answer,answer\nq,a,b\n"),
         "duplicate column 'answer' appears 2 times"),
    Case("duplicate_columns_by_case", "data.csv", _csv("Question,question,answer\nq,q,a\n"),
         "duplicate column 'Question'"),
    Case("ambiguous_answer_columns", "data.csv", _csv("question,Answer 1,Answer 2\nq,a,b\n"),
         "cannot tell which column holds the answers ('Answer 1' or 'Answer 2'"),
    Case("prompt_response", "data.csv", _csv("prompt,response\nHi?,Hello\n"),
         None, all_of(expect(question_column="prompt", answer_column="response"), warns("'prompt' as the question"))),
    Case("best_answer", "data.csv", _csv("Question,Best Answer,Votes\nq,a,3\n"),
         None, all_of(expect(question_column="Question", answer_column="Best Answer", rows=[("q", "a")]),
                      warns("'Best Answer' as the answer"))),
    Case("instruction_input_output", "data.csv", _csv("instruction,input,output\nSay hi,,hi\n"),
         None, expect(question_column="instruction", answer_column="output", rows=[("Say hi", "hi")])),
    Case("text_label", "data.csv", _csv("text,label\nGreat film,positive\n"),
         None, expect(question_column="text", answer_column="label")),

    # --- cells
    Case("nan_and_empty_cells", "data.csv", _csv("question,answer\nq1,a1\n,a2\nq3,\nq4,a4\n"),
         None, all_of(expect(rows_read=4, rows_kept=2, dropped_empty=2),
                      rejected((3, "empty question"), (4, "empty answer")))),
    Case("whitespace_only_cells", "data.csv", _csv("question,answer\n   ,a\nq,\t \n  q3 ,  a3\t\n"),
         None, all_of(expect(rows_kept=1, dropped_empty=2, rows=[("q3", "a3")]), warns("stripped"))),
    Case("blank_line_in_middle", "data.csv", _csv("\n\nquestion,answer\nq1,a1\n\nq2,a2\n\n\n"),
         None, all_of(expect(rows_read=3, rows_kept=2), rejected((5, "blank row")))),
    Case("na_none_literals_kept", "data.csv", _csv("question,answer\nWhat is missing?,NA\nAnd this?,None\nnull?,null\nnan?,NaN\n"),
         None, expect(rows_kept=4, rows=[("What is missing?", "NA"), ("And this?", "None"), ("null?", "null"), ("nan?", "NaN")])),
    Case("numeric_cells", "data.csv", _csv("question,answer\n1,2\n3.50,007\n1e3,-0\n"),
         None, expect(rows=[("1", "2"), ("3.50", "007"), ("1e3", "-0")])),
    Case("duplicated_rows", "data.csv", _csv("question,answer\nq,a\nq2,a2\nq,a\n q , a \n"),
         None, all_of(expect(rows_kept=2, dropped_duplicates=2),
                      rejected((4, "duplicate of row 2"), (5, "duplicate of row 2")), warns("duplicate"))),
    Case("same_question_different_answers", "data.csv",
         _csv('question,answer\nCapital of France?,Paris\ncapital  of FRANCE?,"Paris, France"\nq,a\n'),
         None, all_of(expect(conflicting_questions=1, rows_kept=3), warns("different answers"))),
    Case("question_equals_answer", "data.csv", _csv("question,answer\nEcho,echo\nq,a\n"),
         None, all_of(expect(question_equals_answer=1, rows_kept=2), warns("identical to the question"))),
    Case("very_long_row", "data.csv", _csv(f"question,answer\nshort,ok\nlong?,{LONG_ANSWER}\n"),
         None, lambda data: _assert_long_kept(data)),
    Case("one_row", "data.csv", _csv("question,answer\nonly,one\n"), None, expect(rows_kept=1, rows_read=1)),

    # --- JSON and JSONL
    Case("json_array", "data.json", _csv(json.dumps([{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": 2}])),
         None, all_of(expect(file_format="json", delimiter=None, rows=[("q1", "a1"), ("q2", "2")]), warns("converted 1"))),
    Case("json_wrapped_in_object", "data.json", _csv(json.dumps({"data": [{"prompt": "p", "completion": "c"}]}, indent=2)),
         None, expect(file_format="json", question_column="prompt", answer_column="completion", rows=[("p", "c")])),
    Case("json_pandas_columns", "data.json",
         _csv(json.dumps({"question": {"0": "q1", "1": "q2"}, "answer": {"0": "a1", "1": None}})),
         None, all_of(expect(file_format="json", rows=[("q1", "a1")]), rejected((2, "empty answer")))),
    Case("jsonl", "data.jsonl",
         _csv('{"question": "q1", "answer": "a1"}\n\n{"question": "q2", "answer": null}\n{"question": "q3", "answer": "a3"}\n'),
         None, all_of(expect(file_format="jsonl", rows_read=3, rows=[("q1", "a1"), ("q3", "a3")]),
                      rejected((3, "empty answer")))),
    Case("malformed_jsonl", "data.jsonl",
         _csv('{"question": "q1", "answer": "a1"}\n{"question": "q2", "answer": "a2"}\n{"question": "q3", "answer": a3}\n'),
         "line 3 is not valid JSON"),
    Case("json_syntax_error", "data.json", _csv('[\n  {"question": "q", "answer": "a"},\n]\n'),
         "invalid JSON at line 3"),
    Case("json_items_not_objects", "data.json", _csv('[["q", "a"]]'), "item 1 of the JSON array is a list"),
    Case("json_empty_array", "data.json", _csv("[]"), "no data rows"),
    Case("csv_containing_json", "data.csv", _csv(json.dumps([{"Question": "q", "Answer": "a"}])),
         None, all_of(expect(file_format="json", rows=[("q", "a")]), warns("contains JSON"))),
]


def _no_warning_about_mapping(data) -> None:
    assert not any("as the question" in w or "as the answer" in w for w in data.report.warnings), data.report.warnings


def _assert_long_kept(data) -> None:
    assert data.report.rows_kept == 2
    assert data.frame["answer"].iloc[1] == LONG_ANSWER



CASES_BY_NAME = {case.name: case for case in CASES}
