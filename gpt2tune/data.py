"""
Load question/answer pairs for fine-tuning from whatever table a user has lying
around: CSV, TSV, semicolon or pipe separated text, JSON or JSONL, in UTF-8,
UTF-16 or a Windows code page.

The loader is forgiving but never silent: every row it drops goes into
`QAData.rejected` with the reason, and every repair or oddity becomes a sentence
in `DataReport.warnings`. Input it cannot make sense of raises a ValueError whose
message is ONE line: file name, what was found, and what to do about it.

Typical use:

    data = load_qa_data("faq.csv")
    print(data.report.summary())
    data.frame  # columns "question", "answer": stripped, non-empty strings
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# -----------------------------------------------------------------------------
# results


@dataclass
class DataReport:
    source: str                 # file base name
    file_format: str            # "csv", "tsv", "json", "jsonl"
    encoding: str               # e.g. "utf-8", "utf-8-sig", "utf-16", "cp1252"
    delimiter: str | None       # "," ";" "\t" "|" or None for json
    columns_found: list[str]    # original header names
    question_column: str        # original header name used for questions
    answer_column: str          # original header name used for answers
    rows_read: int
    rows_kept: int
    dropped_empty: int          # rows with empty/NaN/whitespace-only question or answer
    dropped_duplicates: int     # exact duplicate (question, answer) pairs removed (keep first)
    conflicting_questions: int  # same question (normalised) with different answers (kept, counted)
    question_equals_answer: int # kept, counted
    warnings: list[str] = field(default_factory=list)  # one sentence per modification / oddity

    def summary(self) -> str:
        layout = self.file_format
        if self.delimiter is not None:
            layout += f", delimiter {_delimiter_name(self.delimiter)}"
        lines = [
            f"{self.source} ({layout}, {self.encoding}): kept {self.rows_kept:,} of {self.rows_read:,} rows",
            f"columns: question <- '{_short(self.question_column)}', answer <- '{_short(self.answer_column)}'",
            f"dropped: {self.dropped_empty:,} empty, {self.dropped_duplicates:,} duplicate; "
            f"kept but noted: {self.conflicting_questions:,} conflicting questions, "
            f"{self.question_equals_answer:,} question == answer",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class QAData:
    frame: pd.DataFrame     # exactly two str columns "question", "answer", cleaned (strip), index reset
    rejected: pd.DataFrame  # dropped rows: "row", "reason", then the original columns
    report: DataReport


# the synonyms suggest_columns understands, best first. Matching is on the whole
# header or on one of its words, so "Best Answer" and "question_text" work too.
QUESTION_NAMES = ("question", "questions", "q", "prompt", "instruction", "query",
                  "input", "user", "human", "ask", "text", "title")
ANSWER_NAMES = ("answer", "answers", "a", "response", "output", "completion", "reply",
                "target", "label", "assistant", "bot", "solution")

DELIMITERS = (",", ";", "\t", "|")

# -----------------------------------------------------------------------------
# public API


def load_qa_data(path, question_column: str | None = None, answer_column: str | None = None,
                 drop_duplicates: bool = True, max_bytes: int | None = None) -> QAData:
    """Read a question/answer table, pick its two columns, clean and report.

    Rows are numbered as a spreadsheet does: for delimited text the header is
    row 1 and the first data row is row 2 (a quoted cell spanning lines is still
    one row); for a JSON array it is the item number, for JSONL the line number.
    Syntax errors instead name the "line", counted as a text editor does.
    """
    table = _read_raw_table(path, max_bytes)
    if len(table.frame) == 0:
        if table.delimiter is None:
            raise ValueError(f"{table.source}: the file has no data rows (the JSON holds no records). "
                             'Add at least one object like {"question": "...", "answer": "..."}.')
        raise ValueError(f"{table.source}: the file has a header row but no data rows (columns found: "
                         f"{_list_columns(table.header)}). Add at least one row with a question and an answer.")
    q_idx, a_idx, mapping_warnings = _choose_columns(table, question_column, answer_column)
    return _clean(table, q_idx, a_idx, drop_duplicates, mapping_warnings)


def read_table(path, max_bytes=None) -> tuple[pd.DataFrame, dict]:
    """The raw table, every cell a string (missing cells NaN), with what was detected.

    Meant for a UI that shows the columns before the user maps them; the column
    names it returns are accepted by load_qa_data's question_column/answer_column.
    """
    table = _read_raw_table(path, max_bytes)
    info = {"encoding": table.encoding, "delimiter": table.delimiter, "file_format": table.file_format,
            "source": table.source, "columns_found": list(table.header), "warnings": list(table.warnings)}
    return table.frame, info


def suggest_columns(columns: list[str]) -> tuple[str | None, str | None]:
    """The likeliest (question, answer) headers, or None where there is no clear winner."""
    columns = list(columns)
    q_idx, _ = _best_column(columns, QUESTION_NAMES, exclude=())
    a_idx, _ = _best_column(columns, ANSWER_NAMES, exclude=() if q_idx is None else (q_idx,))
    return (None if q_idx is None else columns[q_idx], None if a_idx is None else columns[a_idx])


def write_rejected_csv(data: QAData, path) -> str:
    """Write the rejected rows (row, reason, original columns) to CSV; returns the path.

    A folder as `path` gets "<source stem>_rejected.csv" inside it. The file is
    UTF-8 with a BOM so that Excel shows accents right when a user opens it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / f"{Path(data.report.source).stem}_rejected.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    data.rejected.to_csv(path, index=False, encoding="utf-8-sig")
    return str(path)

# -----------------------------------------------------------------------------
# bytes -> text


@dataclass
class _RawTable:
    frame: pd.DataFrame        # data rows only, all str (NaN where a cell is missing), unique column names
    header: list[str]          # the header names as written (may repeat or be blank)
    row_numbers: np.ndarray    # the row of each frame row as a user counts it (see load_qa_data)
    source: str
    file_format: str
    encoding: str
    delimiter: str | None
    warnings: list[str]


# signatures of files people upload by mistake, checked before any decoding
_MAGIC = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive, e.g. an Excel .xlsx workbook"),
    (b"\xd0\xcf\x11\xe0", "an old Office document such as an Excel .xls workbook"),
    (b"\x1f\x8b", "a gzip-compressed file"), (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\x7fELF", "an executable program"),
)

# UTF-32 first: its little-endian BOM starts with the UTF-16 one
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def _read_raw_table(path, max_bytes) -> _RawTable:
    path = _as_path(path)
    source = path.name or str(path)
    raw = _read_bytes(path, source, max_bytes)
    text, encoding, warnings = _decode(raw, source)
    if not text.strip():
        raise ValueError(f"{source}: the file is empty (it contains only whitespace). "
                         "Add a header row such as 'question,answer' and at least one data row.")
    first_char = text.lstrip()[:1]
    if first_char in ("[", "{"):
        table = _read_json(text, source, path.suffix.lower())
        if path.suffix.lower() not in (".json", ".jsonl", ".ndjson"):
            warnings.append(f"The file is named '{source}' but contains JSON; it was read as JSON.")
    else:
        table = _read_delimited(text, source, path.suffix.lower())
        if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
            warnings.append(f"The file is named '{source}' but does not contain JSON; "
                            f"it was read as {_delimiter_name(table.delimiter)}-separated text.")
    table.encoding = encoding
    table.warnings = warnings + table.warnings
    return table


def _as_path(path) -> Path:
    # upload widgets hand over temp-file objects that carry the path in .name
    if not isinstance(path, (str, os.PathLike)) and isinstance(getattr(path, "name", None), str):
        path = path.name
    return Path(path)


def _read_bytes(path: Path, source: str, max_bytes: int | None) -> bytes:
    if not path.exists():
        raise ValueError(f"{source}: file not found at {_short(str(path), 200)}. Check the path.")
    if path.is_dir():
        raise ValueError(f"{source}: is a folder, not a file. Pass a .csv, .tsv, .json or .jsonl file.")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{source}: the file is {_format_size(size)}, over the limit of {_format_size(max_bytes)}. "
                         "Use a smaller file or raise max_bytes.")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"{source}: the file is empty (0 bytes). "
                         "Add a header row such as 'question,answer' and at least one data row.")
    return raw


def _decode(raw: bytes, source: str) -> tuple[str, str, list[str]]:
    """Bytes -> text with '\\n' line ends; returns (text, encoding, warnings)."""
    encoding, warnings = None, []
    for bom, name in _BOMS:
        if raw.startswith(bom):
            encoding = name
            break
    if encoding is None:
        encoding = _utf16_without_bom(raw[:4096])
    if encoding is None:
        _refuse_binary(raw[:8192], source)
    if encoding is not None:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as err:
            raise ValueError(f"{source}: the file looks like {encoding} but has invalid bytes at byte {err.start:,}. "
                             "Re-save it as UTF-8.") from None
    else:
        text, encoding, warnings = _decode_8bit(raw)
    # one line-end convention, so pandas, the csv module and our line counts agree
    text = text.lstrip("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise ValueError(f"{source}: line {line:,} contains a NUL byte, so the file is damaged or not a text table. "
                         "Remove that character or re-export the file.")
    if _looks_binary(text[:8192]):
        raise ValueError(f"{source}: not a text table (it is mostly control characters). "
                         "Save the data as CSV (UTF-8), TSV, JSON or JSONL and load that.")
    return text, encoding, warnings


def _utf16_without_bom(sample: bytes) -> str | None:
    # ASCII-heavy UTF-16 has a zero in every other byte; binary files do not
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    zeros_even, zeros_odd = even.count(0), odd.count(0)
    if zeros_odd > 0.4 * len(odd) and zeros_even < 0.25 * zeros_odd:
        return "utf-16-le"
    if zeros_even > 0.4 * len(even) and zeros_odd < 0.25 * zeros_even:
        return "utf-16-be"
    return None


def _refuse_binary(sample: bytes, source: str) -> None:
    for magic, what in _MAGIC:
        if sample.startswith(magic):
            raise ValueError(f"{source}: not a text table (it looks like {what}). "
                             "Save the data as CSV (UTF-8), TSV, JSON or JSONL and load that.")
    if b"\x00" in sample:
        raise ValueError(f"{source}: not a text table (it contains NUL bytes, so it is binary data). "
                         "Save the data as CSV (UTF-8), TSV, JSON or JSONL and load that.")


def _looks_binary(sample: str) -> bool:
    controls = sum(sample.count(chr(c)) for c in range(32) if chr(c) not in "\t\n\x0c")
    return controls > 0.1 * len(sample)


def _decode_8bit(raw: bytes) -> tuple[str, str, list[str]]:
    try:
        return raw.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError as err:
        first_bad_line = raw.count(b"\n", 0, err.start) + 1
    # A UTF-8 file with a few stray bytes should stay UTF-8: reading it as cp1252
    # would garble every accent. Tell the cases apart by how much valid multi-byte
    # UTF-8 there is (each U+FFFD costs 2 extra bytes when re-encoded).
    replaced = raw.decode("utf-8", errors="replace")
    n_bad = replaced.count("\ufffd")
    valid_multibyte = len(replaced.encode("utf-8")) - len(replaced) - 2 * n_bad
    if valid_multibyte >= n_bad:
        return replaced, "utf-8", [
            f"{n_bad:,} invalid UTF-8 byte(s) were replaced with '\ufffd' (first on line {first_bad_line:,}); "
            "re-save the file as UTF-8 to keep those characters."]
    for encoding in ("cp1252", "latin-1"):  # latin-1 decodes any byte, so this loop always returns
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text, encoding, [
            f"The file is not valid UTF-8 (first invalid byte on line {first_bad_line:,}), so it was read as {encoding}; "
            "check that accented characters look right, or re-save it as UTF-8."]
    raise AssertionError("unreachable: latin-1 decodes every byte")

# -----------------------------------------------------------------------------
# text -> raw table: delimited text


def _read_delimited(text: str, source: str, suffix: str) -> _RawTable:
    warnings = []
    # blank lines before the header would become the header; drop them but keep
    # counting them so row numbers still match the file
    lead = re.match(r"(?:[ \t]*\n)+", text)
    lines_before = lead.group(0).count("\n") if lead else 0
    text = text[lead.end():] if lead else text
    # trailing blank lines are editor noise, not rows (a regex anchored at the end
    # is quadratic-ish here: it retries at every newline of a big file)
    text = text.rstrip(" \t\n") + "\n"

    # Excel writes "sep=;" as a first line to name the delimiter
    excel_sep = re.match(r"sep=([,;\t|])\n", text)
    if excel_sep:
        delimiter = excel_sep.group(1)
        text = text[excel_sep.end():]
        lines_before += 1
        warnings.append(f"Skipped the Excel 'sep={excel_sep.group(1)}' line at the top.")
    else:
        default = "\t" if suffix == ".tsv" else ","
        delimiter = _sniff_delimiter(text[:65536], default)
        if delimiter != default:
            warnings.append(f"Detected {_delimiter_name(delimiter)} as the delimiter "
                            f"(expected {_delimiter_name(default)} for a {suffix or 'extension-less'} file).")

    try:
        # header=None: the first line fixes the field count, so a longer row is an
        # error instead of pandas silently turning the first column into an index
        cells = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=False, quotechar='"', engine="c")
    except pd.errors.ParserError as err:
        raise _explain_parser_error(err, text, delimiter, source, lines_before) from None

    header = ["" if pd.isna(name) else str(name) for name in cells.iloc[0].tolist()]
    frame = cells.iloc[1:].reset_index(drop=True)
    frame.columns = _unique_names(header)
    # skip_blank_lines=False keeps one frame row per line, so position + 2 is the row number
    row_numbers = np.arange(len(frame)) + 2 + lines_before
    return _RawTable(frame=frame, header=header, row_numbers=row_numbers, source=source,
                     file_format="tsv" if delimiter == "\t" else "csv", encoding="",
                     delimiter=delimiter, warnings=warnings)


def _sniff_delimiter(sample: str, default: str) -> str:
    """The candidate that splits the header into most fields and the rows like the header."""
    truncated = len(sample) == 65536
    if truncated:
        sample = sample[:sample.rfind("\n") + 1] or sample  # don't judge a line the cut split in two
    best, best_score = default, None
    for delimiter in DELIMITERS:
        counts = _field_counts(sample, delimiter, max_records=50)
        if not counts or counts[0] < 2:
            continue
        rows = [c for c in counts[1:] if c > 0]  # blank lines say nothing
        if truncated:
            rows = rows[:-1]  # the last record may be a quoted cell the cut split
        agreement = sum(c == counts[0] for c in rows) / len(rows) if rows else 1.0
        score = (round(agreement, 2), delimiter == default, counts[0])
        if best_score is None or score > best_score:
            best, best_score = delimiter, score
    return best


def _field_counts(sample: str, delimiter: str, max_records: int) -> list[int]:
    counts = []
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
    try:
        for record in reader:
            counts.append(len(record))
            if len(counts) >= max_records:
                break
    except csv.Error:  # e.g. a cell beyond the csv module's size limit: judge on what we have
        pass
    return counts


def _explain_parser_error(err: Exception, text: str, delimiter: str, source: str, lines_before: int) -> ValueError:
    message = " ".join(str(err).split())
    name = _delimiter_name(delimiter)
    # pandas counts records, not lines; a quoted cell can span lines, so translate
    too_many = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if too_many:
        expected, record, saw = (int(g) for g in too_many.groups())
        where = _where(text, delimiter, record - 1, lines_before)
        return ValueError(f"{source}: {where} has {saw} fields but the header has {expected} (delimiter {name}). "
                          f"Put quotes around cells that contain {name}, or remove the extra fields.")
    unclosed = re.search(r"EOF inside string starting at row (\d+)", message)
    if unclosed:
        where = _where(text, delimiter, int(unclosed.group(1)), lines_before)
        return ValueError(f"{source}: unbalanced quote: the quoted cell that starts on {where} is never closed. "
                          'Add the missing closing " or write a quote inside a quoted cell as "".')
    return ValueError(f"{source}: could not read the file as {name}-separated text ({message}). "
                      "Check the quoting and the number of fields per line.")


def _where(text: str, delimiter: str, record_index: int, lines_before: int) -> str:
    """'line N' for the 0-based record index, counting lines as a text editor does."""
    line = 1
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for index, _ in enumerate(reader):
            if index == record_index:
                break
            line = reader.line_num + 1
    except csv.Error:  # e.g. a cell over the csv module's size limit; the row number will have to do
        return f"row {record_index + 1 + lines_before:,}"
    return f"line {line + lines_before:,}"


def _unique_names(header: list[str]) -> list[str]:
    # the pandas convention ("Unnamed: 2", "answer.1"), so read_table's frame looks familiar
    names, used = [], set()
    for position, name in enumerate(header):
        base = name if name.strip() else f"Unnamed: {position}"
        unique, n = base, 0
        while unique in used:
            n += 1
            unique = f"{base}.{n}"
        used.add(unique)
        names.append(unique)
    return names

# -----------------------------------------------------------------------------
# text -> raw table: JSON and JSONL


def _read_json(text: str, source: str, suffix: str) -> _RawTable:
    if text.lstrip()[:1] == "{" and _looks_like_jsonl(text, suffix):
        numbered, file_format = _parse_jsonl(text, source), "jsonl"
        row_numbers = np.array([line for line, _ in numbered], dtype=np.int64)
        records = [record for _, record in numbered]
    else:
        records, file_format = _parse_json_document(text, source), "json"
        row_numbers = np.arange(1, len(records) + 1)
    header = list(dict.fromkeys(key for record in records for key in record))
    columns = {key: pd.Series([_json_cell(record.get(key)) for record in records], dtype="str") for key in header}
    frame = pd.DataFrame(columns, index=range(len(records)))
    frame.columns = _unique_names(header)
    warnings = []
    converted = sum(1 for record in records for value in record.values()
                    if value is not None and not isinstance(value, str))
    if converted:
        warnings.append(f"Converted {converted:,} non-text JSON value(s) (numbers, booleans, lists, objects) to text.")
    return _RawTable(frame=frame, header=header, row_numbers=row_numbers, source=source, file_format=file_format,
                     encoding="", delimiter=None, warnings=warnings)


def _looks_like_jsonl(text: str, suffix: str) -> bool:
    if suffix in (".jsonl", ".ndjson"):
        return True
    lines = [line for line in text.split("\n", 3)[:3] if line.strip()]
    if len(lines) < 2:
        return False  # one line: a single JSON document either way
    try:
        return isinstance(json.loads(lines[0]), dict)
    except json.JSONDecodeError:
        return False  # e.g. pretty-printed: "{" alone on the first line


def _parse_jsonl(text: str, source: str) -> list[tuple[int, dict]]:
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: line {number:,} is not valid JSON ({err.msg} at column {err.colno}). "
                             "Fix or remove that line; each line must be one object.") from None
        if not isinstance(record, dict):
            raise ValueError(f"{source}: line {number:,} is a JSON {_json_type(record)}, expected an object "
                             'like {"question": "...", "answer": "..."}.')
        records.append((number, record))
    return records


def _parse_json_document(text: str, source: str) -> list[dict]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: invalid JSON at line {err.lineno:,}, column {err.colno} ({err.msg}). "
                         "Fix the JSON syntax, or save the data as CSV.") from None
    if isinstance(document, dict):
        document = _records_from_object(document)
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"{source}: item {number:,} of the JSON array is a {_json_type(item)}, expected an "
                             'object like {"question": "...", "answer": "..."}.')
    return document


def _records_from_object(document: dict) -> list:
    values = list(document.values())
    # {"data": [{...}, ...]}: a wrapper around the list we want
    if len(values) == 1 and isinstance(values[0], list) and all(isinstance(v, dict) for v in values[0]):
        return values[0]
    # pandas' default DataFrame.to_json(): {"question": {"0": ...}, "answer": {"0": ...}}
    if values and all(isinstance(v, dict) and v for v in values) and len({tuple(v) for v in values}) == 1:
        return [{column: document[column][key] for column in document} for key in values[0]]
    # columns as lists of equal length: {"question": [...], "answer": [...]}
    if len(values) > 1 and all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        return [dict(zip(document, row)) for row in zip(*values)]
    return [document]  # one record


def _json_cell(value) -> str | None:
    # JSON's own spelling keeps numbers and booleans as the user wrote them (1.5, true)
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _json_type(value) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")

# -----------------------------------------------------------------------------
# picking the question and answer columns


def _normalise_header(name: str) -> str:
    return " ".join(re.split(r"[\s_\-]+", name.strip().strip("\ufeff\u200b").lower())).strip()


def _match_score(name: str, synonyms: tuple[str, ...]) -> tuple[int, int] | None:
    """(0, rank) for a whole-header match, (1, rank) for a word match, None otherwise; lower is better."""
    normal = _normalise_header(name)
    words = re.findall(r"[^\W_]+", normal)
    for rank, synonym in enumerate(synonyms):
        if normal == synonym:
            return (0, rank)
    for rank, synonym in enumerate(synonyms):
        if synonym in words:
            return (1, rank)
    return None


def _best_column(columns: list[str], synonyms: tuple[str, ...], exclude) -> tuple[int | None, list[int]]:
    """(index of the clear winner or None, indices tied for first place)."""
    scored = sorted((score, i) for i, name in enumerate(columns)
                    if i not in exclude and (score := _match_score(name, synonyms)) is not None)
    if not scored:
        return None, []
    tied = [i for score, i in scored if score == scored[0][0]]
    return (tied[0] if len(tied) == 1 else None), tied


def _choose_columns(table: _RawTable, question_column, answer_column) -> tuple[int, int, list[str]]:
    header, source = table.header, table.source
    q_idx = _find_given_column(table, question_column, "question_column") if question_column is not None else None
    a_idx = _find_given_column(table, answer_column, "answer_column") if answer_column is not None else None
    if q_idx is not None and q_idx == a_idx:
        raise ValueError(f"{source}: question_column and answer_column both name column '{_short(header[q_idx])}'. "
                         "Pass two different columns.")
    if q_idx is None:
        q_idx, tied = _best_column(header, QUESTION_NAMES, exclude=() if a_idx is None else (a_idx,))
        _refuse_tie(table, tied, "questions", "question_column")
    if a_idx is None:
        a_idx, tied = _best_column(header, ANSWER_NAMES, exclude=() if q_idx is None else (q_idx,))
        _refuse_tie(table, tied, "answers", "answer_column")
    if q_idx is None or a_idx is None:
        raise ValueError(_missing_columns_message(source, header, q_idx is None, a_idx is None))

    warnings = []
    mapped = [(role, header[i]) for role, i, given in (("question", q_idx, question_column),
                                                      ("answer", a_idx, answer_column))
              if given is None and _normalise_header(header[i]) != role]
    if mapped:
        used = " and ".join(f"'{_short(name)}' as the {role}" for role, name in mapped)
        missing = "/".join(f"'{role}'" for role, _ in mapped)
        warnings.append(f"Used column {used} (no {missing} header found).")
    ignored = [_short(name) if name.strip() else "<blank>" for i, name in enumerate(header) if i not in (q_idx, a_idx)]
    if ignored:
        more = f" and {len(ignored) - 20} more" if len(ignored) > 20 else ""
        warnings.append(f"Ignored {len(ignored)} other column(s): {', '.join(ignored[:20])}{more}.")
    return q_idx, a_idx, warnings


def _refuse_tie(table: _RawTable, tied: list[int], role: str, option: str) -> None:
    if len(tied) < 2:
        return
    names = [table.header[i] for i in tied]
    if len({_normalise_header(name) for name in names}) == 1:
        _refuse_duplicate(table, names[0], len(tied))
    candidates = " or ".join(f"'{_short(name)}'" for name in names)
    raise ValueError(f"{table.source}: cannot tell which column holds the {role} ({candidates}; columns found: "
                     f"{_list_columns(table.header)}). Pass {option}=... to choose.")


def _refuse_duplicate(table: _RawTable, name: str, count: int) -> None:
    raise ValueError(f"{table.source}: duplicate column '{_short(name)}' appears {count} times (columns found: "
                     f"{_list_columns(table.header)}). Rename or remove the extra one so it is clear which to use.")


def _find_given_column(table: _RawTable, given: str, option: str) -> int:
    normal = _normalise_header(str(given))
    matches = [i for i, name in enumerate(table.header) if _normalise_header(name) == normal]
    if len(matches) > 1:
        _refuse_duplicate(table, table.header[matches[0]], len(matches))
    if matches:
        return matches[0]
    if str(given) in table.frame.columns:  # a name read_table made up, e.g. "Unnamed: 2" or "notes.1"
        return list(table.frame.columns).index(str(given))
    raise ValueError(f"{table.source}: column '{_short(str(given))}' ({option}) not found (columns found: "
                     f"{_list_columns(table.header)}). Pass one of the columns found.")


def _missing_columns_message(source: str, header: list[str], question_missing: bool, answer_missing: bool) -> str:
    found = _list_columns(header)
    if len(header) == 1:
        found += f"; only one column, so the delimiter may not be one of {', '.join(map(_delimiter_name, DELIMITERS))}"
    if question_missing and answer_missing:
        return (f"{source}: missing columns 'question' and 'answer' (columns found: {found}). "
                "Rename columns to 'question' and 'answer' or pass question_column=... and answer_column=...")
    role = "question" if question_missing else "answer"
    return (f"{source}: missing column '{role}' (columns found: {found}). "
            f"Rename a column to '{role}' or pass {role}_column=...")

# -----------------------------------------------------------------------------
# cleaning


def _clean(table: _RawTable, q_idx: int, a_idx: int, drop_duplicates: bool, warnings: list[str]) -> QAData:
    raw, rows, source = table.frame, table.row_numbers, table.source
    q_raw = raw.iloc[:, q_idx].fillna("")
    a_raw = raw.iloc[:, a_idx].fillna("")
    question, answer = q_raw.str.strip(), a_raw.str.strip()
    warnings = list(table.warnings) + warnings

    # 1) rows without both halves can't be trained on
    q_empty, a_empty = (question == "").to_numpy(), (answer == "").to_numpy()
    empty = q_empty | a_empty
    blank = np.zeros(len(raw), dtype=bool)
    both = q_empty & a_empty
    if both.any():  # a row with every cell empty is a blank row; only look at the few candidates
        blank[both] = raw[both].fillna("").apply(lambda column: column.str.strip() == "").all(axis=1).to_numpy()
    reasons = np.select([blank, both, q_empty, a_empty],
                        ["blank row", "empty question and answer", "empty question", "empty answer"], default="")
    reasons = reasons.astype(object)

    # 2) exact repeats teach nothing new and over-weight those pairs
    kept = ~empty
    duplicate = np.zeros(len(raw), dtype=bool)
    repeats = pd.DataFrame({"q": question[kept], "a": answer[kept]}).duplicated(keep="first").to_numpy()
    n_repeats = int(repeats.sum())
    if n_repeats and drop_duplicates:
        duplicate[np.flatnonzero(kept)[repeats]] = True
        pairs = pd.DataFrame({"q": question[kept], "a": answer[kept], "row": rows[kept]})
        first_row = pairs.groupby(["q", "a"], sort=False)["row"].transform("first").to_numpy()
        reasons[duplicate] = "duplicate of row " + first_row[repeats].astype(str).astype(object)
    kept &= ~duplicate

    if not kept.any():
        first = int(np.flatnonzero(empty)[0])
        raise ValueError(f"{source}: no usable rows: all {len(raw):,} data rows have an empty question or answer "
                         f"(first: row {rows[first]}, {reasons[first]}). Fill in both the "
                         f"'{_short(table.header[q_idx])}' and '{_short(table.header[a_idx])}' cells.")

    # 3) oddities worth knowing about, but the rows are kept
    question, answer, kept_rows = question[kept], answer[kept], rows[kept]
    q_normal, a_normal = _normalise_text(question), _normalise_text(answer)
    pairs = pd.DataFrame({"q": q_normal, "a": answer}).drop_duplicates()
    answers_per_question = pairs["q"].value_counts()
    conflicting = answers_per_question.index[answers_per_question > 1]
    echo = (q_normal == a_normal).to_numpy()
    stripped = int((q_raw[kept] != question).sum() + (a_raw[kept] != answer).sum())

    dropped_empty = int(empty.sum())
    if dropped_empty:
        warnings.append(f"Dropped {dropped_empty:,} row(s) with an empty question or answer "
                        f"({_list_rows(rows[empty])}).")
    if drop_duplicates and n_repeats:
        warnings.append(f"Dropped {n_repeats:,} exact duplicate question/answer pair(s) "
                        f"({_list_rows(rows[duplicate])}); the first copy is kept.")
    elif n_repeats:
        warnings.append(f"Kept {n_repeats:,} exact duplicate question/answer pair(s) (drop_duplicates=False).")
    if len(conflicting):
        in_conflict = q_normal.isin(conflicting).to_numpy()
        first = int(np.flatnonzero(in_conflict)[0])
        warnings.append(f"{len(conflicting):,} question(s) appear with different answers (first at row "
                        f"{kept_rows[first]}: '{_short(question.iloc[first])}'); all are kept.")
    if echo.any():
        warnings.append(f"{int(echo.sum()):,} row(s) have an answer identical to the question "
                        f"({_list_rows(kept_rows[echo])}); kept.")
    if stripped:
        warnings.append(f"Stripped leading/trailing whitespace from {stripped:,} cell(s).")

    frame = pd.DataFrame({"question": question, "answer": answer}).reset_index(drop=True)
    report = DataReport(
        source=source, file_format=table.file_format, encoding=table.encoding, delimiter=table.delimiter,
        columns_found=list(table.header), question_column=table.header[q_idx], answer_column=table.header[a_idx],
        rows_read=len(raw), rows_kept=len(frame), dropped_empty=dropped_empty,
        dropped_duplicates=int(duplicate.sum()), conflicting_questions=len(conflicting),
        question_equals_answer=int(echo.sum()), warnings=warnings)
    return QAData(frame=frame, rejected=_rejected_frame(raw, rows, reasons, ~kept), report=report)


def _normalise_text(values: pd.Series) -> pd.Series:
    """Lower case with runs of whitespace as one space: 'What  is X?' == 'what is x?'."""
    values = values.str.lower()
    # the regex is the slow part on a million rows, so only run it where it can matter
    spaced = (values.str.contains("  ", regex=False) | values.str.contains("\n", regex=False)
              | values.str.contains("\t", regex=False))
    if spaced.any():
        values = values.copy()
        values[spaced] = values[spaced].str.replace(r"\s+", " ", regex=True)
    return values


def _rejected_frame(raw: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray, dropped: np.ndarray) -> pd.DataFrame:
    original = raw[dropped].reset_index(drop=True)
    # keep our two columns unambiguous even if the file has its own "row"/"reason"
    original.columns = [f"{name} (original)" if name in ("row", "reason") else name for name in original.columns]
    rejected = pd.concat([pd.DataFrame({"row": rows[dropped].astype(np.int64),
                                        "reason": pd.Series(reasons[dropped], dtype="str")}), original], axis=1)
    return rejected.sort_values("row", kind="stable").reset_index(drop=True)

# -----------------------------------------------------------------------------
# message helpers: everything user-provided goes through _short, so messages stay one line


def _short(text: str, limit: int = 40) -> str:
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _list_columns(header: list[str]) -> str:
    if not header:
        return "none"
    names = [_short(name) if name.strip() else "<blank>" for name in header[:20]]
    more = f" and {len(header) - 20} more" if len(header) > 20 else ""
    return ", ".join(names) + more


def _list_rows(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit:,} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _delimiter_name(delimiter: str | None) -> str:
    return {"\t": "tab", None: "none"}.get(delimiter, f"'{delimiter}'")


def _format_size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB ({n_bytes:,} bytes)"
