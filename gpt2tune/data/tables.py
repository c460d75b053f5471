"""Read a user's file into a raw table of strings: detect binary files, the text encoding,
CSV/TSV/semicolon/pipe delimiters and JSON/JSONL, and explain unreadable input in one line.

`gpt2tune.data.load` then picks the question/answer columns and cleans the rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DELIMITERS = (",", ";", "\t", "|")
MAX_COLUMNS = 1_000  # a question/answer table needs two; a file 100,000 columns wide costs seconds per read
MAX_CELL_CHARS = 1_000_000  # per question or answer: hundreds of times what GPT-2 reads of one example (1,024 tokens)


def check_width(columns: int, source: str) -> None:
    """Refuse a table wider than MAX_COLUMNS before it is parsed, in one line."""
    if columns > MAX_COLUMNS:
        raise ValueError(f"{source}: {columns:,} columns, over the limit of {MAX_COLUMNS:,}: keep the question and "
                         "answer columns (and a few others) and save it again")

# -----------------------------------------------------------------------------
# bytes -> text


@dataclass
class RawTable:
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


def read_raw_table(path, max_bytes) -> RawTable:
    path = _as_path(path)
    source = path.name or str(path)
    fast = _read_large_delimited(path, source, max_bytes)
    if fast is not None:
        return fast
    raw = _read_bytes(path, source, max_bytes)
    text, encoding, warnings = _decode(raw, source)
    if not text.strip():
        raise ValueError(f"{source}: the file is empty (it contains only whitespace). "
                         "Add a header row such as 'question,answer' and at least one data row.")
    first_char = text.lstrip()[:1]
    if first_char in ("[", "{"):
        # a raw CR in JSON can only be whitespace between values (strings escape theirs)
        table = _read_json(unix_lines(text), source, path.suffix.lower())
        if path.suffix.lower() not in (".json", ".jsonl", ".ndjson"):
            warnings.append(f"The file is named '{source}' but contains JSON; it was read as JSON.")
    else:
        table = _read_delimited(text, source, path.suffix.lower())
        if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
            warnings.append(f"The file is named '{source}' but does not contain JSON; "
                            f"it was read as {delimiter_name(table.delimiter)}-separated text.")
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
        raise ValueError(f"{source}: file not found at {short(str(path), 200)}. Check the path.")
    if path.is_dir():
        raise ValueError(f"{source}: is a folder, not a file. Pass a .csv, .tsv, .json or .jsonl file.")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{source}: the file is {format_size(size)}, over the limit of {format_size(max_bytes)}. "
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
    # Line ends stay as written: a CR LF inside a quoted cell is the cell's text, changed (and
    # counted) with the other repairs when the rows are cleaned. Only our own reading of the
    # lines (sniffing, error line numbers) sees them unified, through `unix_lines`.
    text = text.lstrip("\ufeff")
    nul = text.find("\x00")
    if nul >= 0:
        line = unix_lines(text[:nul]).count("\n") + 1
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


def unix_lines(text: str) -> str:
    """The text with every line end (CR LF, a lone CR) as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _looks_binary(sample: str) -> bool:
    controls = sum(sample.count(chr(c)) for c in range(32) if chr(c) not in "\t\n\r\x0c")
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


def _read_delimited(text: str, source: str, suffix: str) -> RawTable:
    warnings = []
    # blank lines before the header would become the header; drop them but keep
    # counting them so row numbers still match the file
    lead = re.match(r"(?:[ \t]*(?:\r\n?|\n))+", text)
    lines_before = unix_lines(lead.group(0)).count("\n") if lead else 0
    text = text[lead.end():] if lead else text
    # trailing blank lines are editor noise, not rows (a regex anchored at the end
    # is quadratic-ish here: it retries at every newline of a big file)
    text = text.rstrip(" \t\r\n") + "\n"

    # Excel writes "sep=;" as a first line to name the delimiter
    excel_sep = re.match(r"sep=([,;\t|])(?:\r\n?|\n)", text)
    if excel_sep:
        delimiter = excel_sep.group(1)
        text = text[excel_sep.end():]
        lines_before += 1
        warnings.append(f"Skipped the Excel 'sep={excel_sep.group(1)}' line at the top.")
    else:
        default = "\t" if suffix == ".tsv" else ","
        delimiter = _sniff_delimiter(unix_lines(text[:65536]), default)
        if delimiter != default:
            warnings.append(f"Detected {delimiter_name(delimiter)} as the delimiter "
                            f"(expected {delimiter_name(default)} for a {suffix or 'extension-less'} file).")

    first_line = re.match(r"[^\r\n]*", text).group(0)  # the header; cheap to count before pandas builds every column
    check_width(len(next(csv.reader([first_line], delimiter=delimiter), [])), source)
    try:
        # header=None: the first line fixes the field count, so a longer row is an
        # error instead of pandas silently turning the first column into an index
        cells = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=False, quotechar='"', engine="c")
    except pd.errors.ParserError as err:
        raise _explain_parser_error(err, unix_lines(text), delimiter, source, lines_before) from None

    header = ["" if pd.isna(name) else str(name) for name in cells.iloc[0].tolist()]
    frame = cells.iloc[1:].reset_index(drop=True)
    frame.columns = _unique_names(header)
    # skip_blank_lines=False keeps one frame row per line, so position + 2 is the row number
    row_numbers = np.arange(len(frame)) + 2 + lines_before
    return RawTable(frame=frame, header=header, row_numbers=row_numbers, source=source,
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
    name = delimiter_name(delimiter)
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
# large delimited files: straight from the file into Arrow, in blocks
#
# The general path above holds the file as bytes, then as one str, then every cell as a Python
# string: about 10x the file's size (3.7 GiB for a 328 MiB CSV). A large, plain file (UTF-8, a
# header on line 1, no blank lines, every row with the header's field count) goes through Arrow's
# CSV reader instead: it reads the file in blocks and keeps each column as one Arrow string
# buffer, about the file's size in all. Anything out of the ordinary (another encoding, a BOM
# other than UTF-8's, blank lines, a NUL byte, a ragged row, invalid UTF-8) falls back to the
# general path, which reads it with its row-numbered warnings and one-line errors.

ARROW_MIN_BYTES = 8 * 2**20  # below this the general path is fast enough and its memory small
_SCAN_BLOCK = 16 * 2**20


def _read_large_delimited(path: Path, source: str, max_bytes: int | None) -> RawTable | None:
    """The table through Arrow, or None when the file is small or not plain enough (see above)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if not path.is_file() or size < ARROW_MIN_BYTES or (max_bytes is not None and size > max_bytes):
        return None
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson"):
        return None
    with open(path, "rb") as handle:
        head = handle.read(65536)
    bom = codecs.BOM_UTF8 if head.startswith(codecs.BOM_UTF8) else b""
    sample_bytes = head[len(bom):]
    if any(sample_bytes.startswith(b) for b, _ in _BOMS) or _utf16_without_bom(sample_bytes[:4096]):
        return None
    sample_bytes = sample_bytes[:sample_bytes.rfind(b"\n") + 1]  # whole lines only
    try:
        sample = sample_bytes.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return None
    if not sample.strip() or sample.lstrip()[:1] in ("[", "{") or re.match(r"[ \t]*\n|sep=", sample) or "\r" in sample:
        return None
    if not _plain(path):
        return None
    default = "\t" if suffix == ".tsv" else ","
    delimiter = _sniff_delimiter(sample[:65536], default)
    warnings = []
    if delimiter != default:
        warnings.append(f"Detected {delimiter_name(delimiter)} as the delimiter "
                        f"(expected {delimiter_name(default)} for a {suffix or 'extension-less'} file).")
    header = next(csv.reader(io.StringIO(sample), delimiter=delimiter), None)
    if not header:
        return None
    check_width(len(header), source)
    frame = _arrow_frame(path, delimiter, len(header))
    if frame is None:
        return None
    frame.columns = _unique_names(header)
    return RawTable(frame=frame, header=header, row_numbers=np.arange(len(frame)) + 2, source=source,
                    file_format="tsv" if delimiter == "\t" else "csv", encoding="utf-8-sig" if bom else "utf-8",
                    delimiter=delimiter, warnings=warnings)


def _plain(path: Path) -> bool:
    """One pass over the bytes in blocks (memory: one block). Not plain: a blank line or a NUL byte,
    which need the general path's row numbering and messages."""
    previous = b""
    with open(path, "rb") as handle:
        while block := handle.read(_SCAN_BLOCK):
            window = previous + block
            if b"\x00" in block or b"\n\n" in window or b"\n\r\n" in window:
                return False
            previous = block[-2:]
    return True


def _arrow_frame(path: Path, delimiter: str, n_fields: int) -> pd.DataFrame | None:
    """Every cell as an Arrow-backed string (pandas `string[pyarrow]`), or None when Arrow refuses the file."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    names = [f"f{i}" for i in range(n_fields)]
    read = pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=_SCAN_BLOCK, use_threads=True,
                              encoding="utf8")
    parse = pa_csv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True, newlines_in_values=True,
                                ignore_empty_lines=False)
    convert = pa_csv.ConvertOptions(column_types={name: pa.string() for name in names}, strings_can_be_null=False,
                                    quoted_strings_can_be_null=False, null_values=[], check_utf8=True)
    try:
        table = pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None  # ragged rows, bad quoting, invalid UTF-8: the general path explains them
    # each column kept in its blocks: joining them would copy the whole column
    columns = {name: table.column(name) for name in names}
    del table
    return pd.DataFrame({name: pd.Series(pd.arrays.ArrowStringArray(column)) for name, column in columns.items()})


# -----------------------------------------------------------------------------
# text -> raw table: JSON and JSONL


def _read_json(text: str, source: str, suffix: str) -> RawTable:
    if text.lstrip()[:1] == "{" and _looks_like_jsonl(text, suffix):
        numbered, file_format = _parse_jsonl(text, source), "jsonl"
        row_numbers = np.array([line for line, _ in numbered], dtype=np.int64)
        records = [record for _, record in numbered]
    else:
        records, file_format = _parse_json_document(text, source), "json"
        row_numbers = np.arange(1, len(records) + 1)
    header = list(dict.fromkeys(key for record in records for key in record))
    check_width(len(header), source)
    columns = {key: pd.Series([_json_cell(record.get(key)) for record in records], dtype="str") for key in header}
    frame = pd.DataFrame(columns, index=range(len(records)))
    frame.columns = _unique_names(header)
    warnings = []
    converted = sum(1 for record in records for value in record.values()
                    if value is not None and not isinstance(value, str))
    if converted:
        warnings.append(f"Converted {converted:,} non-text JSON value(s) (numbers, booleans, lists, objects) to text.")
    return RawTable(frame=frame, header=header, row_numbers=row_numbers, source=source, file_format=file_format,
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
# columns of Arrow text: large files are read into them, in blocks


def arrow_text(column: pd.Series):
    """The Arrow blocks (a ChunkedArray) of a column held as Arrow strings, or None for any other column."""
    return column.array.__arrow_array__() if isinstance(column.array, pd.arrays.ArrowStringArray) else None


def text_series(blocks, like: pd.Series, index=None) -> pd.Series:
    """Arrow text blocks as a Series with the name and dtype of `like` (no copy of the text)."""
    return pd.Series(pd.arrays.ArrowStringArray(blocks), index=index, name=like.name).astype(like.dtype)


def take_rows(values, positions):
    """`values.iloc[positions]` of a frame or Series, index reset, without copying whole columns.

    Arrow gathers from a column held in blocks (a large file is read in blocks) by first joining the
    blocks: picking three rows of a million answers would copy all 0.3 GiB of them. A boolean filter
    works block by block, so Arrow text columns are filtered in file order and then put in the order
    asked. Positions must be distinct (rows of a split or a sample).
    """
    import pyarrow as pa

    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) == len(values) and np.array_equal(positions, np.arange(len(values))):
        return values.reset_index(drop=True)  # every row, in order: nothing to copy
    mask = np.zeros(len(values), dtype=bool)
    mask[positions] = True
    in_order = bool(np.all(positions[1:] > positions[:-1]))
    order = None if in_order else pa.array(np.argsort(np.argsort(positions, kind="stable"), kind="stable"))

    def take(column: pd.Series) -> pd.Series:
        blocks = arrow_text(column)
        if blocks is None:
            return column.iloc[positions].reset_index(drop=True)
        picked = blocks.filter(pa.array(mask))
        if order is not None:  # file order -> the order asked
            picked = picked.combine_chunks().take(order)
        return text_series(picked, like=column)

    if isinstance(values, pd.Series):
        return take(values)
    return pd.DataFrame({name: take(values[name]) for name in values.columns})


# -----------------------------------------------------------------------------
# message helpers: everything user-provided goes through short, so messages stay one line


def short(text: str, limit: int = 40) -> str:
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def list_columns(header: list[str]) -> str:
    if not header:
        return "none"
    names = [short(name) if name.strip() else "<blank>" for name in header[:20]]
    more = f" and {len(header) - 20} more" if len(header) > 20 else ""
    return ", ".join(names) + more


def list_rows(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit:,} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def delimiter_name(delimiter: str | None) -> str:
    return {"\t": "tab", None: "none"}.get(delimiter, f"'{delimiter}'")


def format_size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB ({n_bytes:,} bytes)"


def file_sha256(path) -> str:
    """A file's SHA-256, read in blocks: the fingerprint that says which data a run saw."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
