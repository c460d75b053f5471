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

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gpt2tune.data import content
from gpt2tune.data.normalise import BLANK, DuplicateCounts, duplicate_counts, exact_firsts, normalised_codes
from gpt2tune.data.tables import (
    DELIMITERS,
    RawTable,
    delimiter_name,
    list_columns,
    list_rows,
    read_raw_table,
    short,
    take_rows,
)

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
    conflicting_questions: int  # distinct questions (normalised) with different answers (kept, counted)
    question_equals_answer: int # kept, counted
    warnings: list[str] = field(default_factory=list)  # one sentence per modification / oddity
    duplicates: DuplicateCounts | None = None  # counted on the non-empty rows, before duplicates are dropped
    line_break_cells: int = 0   # cells whose CR LF or CR line breaks became LF
    invisible_cells: int = 0    # cells that held invisible/control characters (removed)
    invisible_chars: int = 0    # characters removed from them
    html_cells: dict = field(default_factory=dict)  # {"question": n, "answer": n} cells holding HTML tags
    html_stripped: bool = False
    list_answers: int = 0       # kept rows whose answer is a list of several acceptable answers
    list_cells: int = 0         # kept answer cells that are lists (of one answer or more)
    list_repeats: int = 0       # answers removed because they repeated another in the same list
    references: int = 0         # answers in all kept rows (a list counts each element)

    def summary(self) -> str:
        layout = self.file_format
        if self.delimiter is not None:
            layout += f", delimiter {delimiter_name(self.delimiter)}"
        lines = [
            f"{self.source} ({layout}, {self.encoding}): kept {self.rows_kept:,} of {self.rows_read:,} rows",
            f"columns: question <- '{short(self.question_column)}', answer <- '{short(self.answer_column)}'",
            f"dropped rows: {self.dropped_empty:,} empty, {self.dropped_duplicates:,} duplicate; "
            f"kept but noted: {self.conflicting_questions:,} distinct questions with different answers, "
            f"{self.question_equals_answer:,} rows with question == answer",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class QAData:
    frame: pd.DataFrame     # exactly two str columns "question", "answer", cleaned (strip), index reset
    rejected: pd.DataFrame  # dropped rows: "row", "reason", then the original columns
    report: DataReport
    fingerprint: str | None = None  # a hash naming the frame's content when one is known (a cached load)

    def write(self, folder: Path) -> None:
        import json
        from dataclasses import asdict

        self.frame.to_feather(folder / "frame.arrow")
        self.rejected.to_feather(folder / "rejected.arrow")
        (folder / "report.json").write_text(json.dumps(asdict(self.report)))

    @classmethod
    def read(cls, folder: Path) -> QAData:
        import json

        values = json.loads((folder / "report.json").read_text())
        duplicates = values.pop("duplicates")
        report = DataReport(**values, duplicates=DuplicateCounts(**duplicates) if duplicates else None)
        return cls(pd.read_feather(folder / "frame.arrow"), pd.read_feather(folder / "rejected.arrow"), report)


# the synonyms suggest_columns understands, best first. Matching is on the whole
# header or on one of its words, so "Best Answer" and "question_text" work too.
QUESTION_NAMES = ("question", "questions", "q", "prompt", "instruction", "query",
                  "input", "user", "human", "ask", "text", "title")
ANSWER_NAMES = ("answer", "answers", "a", "response", "output", "completion", "reply",
                "target", "label", "assistant", "bot", "solution")


# -----------------------------------------------------------------------------
# public API


def load_qa_data(path, question_column: str | None = None, answer_column: str | None = None,
                 drop_duplicates: bool = True, max_bytes: int | None = None, strip_html: bool = False) -> QAData:
    """Read a question/answer table, pick its two columns, clean and report.

    Rows are numbered as a spreadsheet does: for delimited text the header is
    row 1 and the first data row is row 2 (a quoted cell spanning lines is still
    one row); for a JSON array it is the item number, for JSONL the line number.
    Syntax errors instead name the "line", counted as a text editor does.
    """
    from gpt2tune.heap import release_freed_memory

    table = read_raw_table(path, max_bytes)
    release_freed_memory(collect=False)  # the parser's block buffers: cleaning needs that memory
    return qa_data_from_table(table, question_column, answer_column, drop_duplicates, strip_html)


def qa_data_from_table(table: RawTable, question_column: str | None = None, answer_column: str | None = None,
                       drop_duplicates: bool = True, strip_html: bool = False) -> QAData:
    """Pick, clean and report the question/answer columns of a table already read (a file or a Hub dataset)."""
    if len(table.frame) == 0:
        if table.file_format == "hub dataset":
            raise ValueError(f"{table.source}: the dataset split has no rows. Choose another split or dataset.")
        if table.delimiter is None:
            raise ValueError(f"{table.source}: the file has no data rows (the JSON holds no records). "
                             'Add at least one object like {"question": "...", "answer": "..."}.')
        raise ValueError(f"{table.source}: the file has a header row but no data rows (columns found: "
                         f"{list_columns(table.header)}). Add at least one row with a question and an answer.")
    q_idx, a_idx, mapping_warnings = _choose_columns(table, question_column, answer_column)
    for index in (q_idx, a_idx):
        _check_cell_size(table, index)
    return _clean(table, q_idx, a_idx, drop_duplicates, mapping_warnings, strip_html)


def load_config_data(config, cache_dir: str | Path | None = None) -> QAData:
    """The data a TuneConfig names: the Hub dataset when `dataset` is set, else the `csv` file.

    With `cache_dir`, a file's cleaned rows, rejected rows and report are kept there (hidden folder
    `.tables`) under a hash of its bytes, the options and the loader's code: a rerun on a million-row
    file reads them back in a second instead of cleaning it again.
    """
    def load() -> QAData:
        return load_source(config.csv, config.question_column, config.answer_column, config.dataset,
                           config.dataset_config, config.dataset_split, config.dataset_revision, config.strip_html,
                           hub_token=config.hub_token, hub_cache_dir=config.hub_cache_dir)

    if cache_dir is None or (config.dataset and str(config.dataset).strip()):
        return load()
    from gpt2tune.data import tokcache

    try:
        key = tokcache.source_key(config.csv, config.question_column, config.answer_column, config.strip_html)
    except OSError:  # missing or unreadable: the loader says so in its own words
        return load()
    data = tokcache.cached(Path(cache_dir) / ".tables", key, load, QAData.write, QAData.read, read_back=True)
    data.fingerprint = key
    return data


def load_source(csv, question_column=None, answer_column=None, dataset=None, dataset_config=None,
                dataset_split=None, dataset_revision=None, strip_html: bool = False, hub_token: bool = True,
                hub_cache_dir: str | None = None) -> QAData:
    """A file, or a Hub dataset when `dataset` (user/name) is given: the same mapping, cleaning and report."""
    if dataset and str(dataset).strip():
        from gpt2tune.data.hub_dataset import read_hub_table

        table = read_hub_table(str(dataset).strip(), dataset_config, dataset_split, dataset_revision,
                               token=hub_token, cache_dir=hub_cache_dir)
        return qa_data_from_table(table, question_column, answer_column, strip_html=strip_html)
    return load_qa_data(csv, question_column, answer_column, strip_html=strip_html)


def _check_cell_size(table: RawTable, index: int) -> None:
    """Refuse a question or answer cell over MAX_CELL_CHARS in one line naming it: tokenizing and
    showing it would cost far more than GPT-2 could ever learn from it."""
    from gpt2tune.data.tables import MAX_CELL_CHARS

    lengths = table.frame.iloc[:, index].str.len()
    longest = lengths.max()
    if pd.notna(longest) and longest > MAX_CELL_CHARS:
        row = table.row_numbers[int(np.asarray(lengths.fillna(0)).argmax())]
        raise ValueError(f"{table.source}: row {row}, column {short(table.header[index], 40)!r} holds "
                         f"{int(longest):,} characters, over the limit of {MAX_CELL_CHARS:,} per cell: "
                         "shorten it or leave the row out")


def read_table(path, max_bytes=None) -> tuple[pd.DataFrame, dict]:
    """The raw table, every cell a string (missing cells NaN), with what was detected.

    Meant for a UI that shows the columns before the user maps them; the column
    names it returns are accepted by load_qa_data's question_column/answer_column.
    """
    table = read_raw_table(path, max_bytes)
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
    UTF-8 with a BOM so that Excel shows accents right when a user opens it, and
    every text cell and header that a spreadsheet would run as a formula is
    neutralised (see `spreadsheet_safe`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / f"{Path(data.report.source).stem}_rejected.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    safe = data.rejected.map(spreadsheet_safe).rename(columns=spreadsheet_safe)
    safe.to_csv(path, index=False, encoding="utf-8-sig")
    return str(path)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell a spreadsheet would evaluate (`=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`) gets a
    leading `'`, so it shows as the text it is (the OWASP rule for CSV injection). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value

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


def _choose_columns(table: RawTable, question_column, answer_column) -> tuple[int, int, list[str]]:
    header, source = table.header, table.source
    q_idx = _find_given_column(table, question_column, "--question-column") if question_column is not None else None
    a_idx = _find_given_column(table, answer_column, "--answer-column") if answer_column is not None else None
    if q_idx is not None and q_idx == a_idx:
        raise ValueError(f"{source}: question_column and answer_column both name column '{short(header[q_idx])}'. "
                         "Pass two different columns.")
    if q_idx is None:
        q_idx, tied = _best_column(header, QUESTION_NAMES, exclude=() if a_idx is None else (a_idx,))
        _refuse_tie(table, tied, "questions", "--question-column")
    if a_idx is None:
        a_idx, tied = _best_column(header, ANSWER_NAMES, exclude=() if q_idx is None else (q_idx,))
        _refuse_tie(table, tied, "answers", "--answer-column")
    if q_idx is None or a_idx is None:
        raise ValueError(_missing_columns_message(source, header, q_idx is None, a_idx is None))

    warnings = []
    mapped = [(role, header[i]) for role, i, given in (("question", q_idx, question_column),
                                                      ("answer", a_idx, answer_column))
              if given is None and _normalise_header(header[i]) != role]
    if mapped:
        used = " and ".join(f"'{short(name)}' as the {role}" for role, name in mapped)
        missing = "/".join(f"'{role}'" for role, _ in mapped)
        warnings.append(f"Used column {used} (no {missing} header found).")
    ignored = [short(name) if name.strip() else "<blank>" for i, name in enumerate(header) if i not in (q_idx, a_idx)]
    if ignored:
        more = f" and {len(ignored) - 20} more" if len(ignored) > 20 else ""
        warnings.append(f"Ignored {len(ignored)} other column(s): {', '.join(ignored[:20])}{more}.")
    return q_idx, a_idx, warnings


def _refuse_tie(table: RawTable, tied: list[int], role: str, option: str) -> None:
    if len(tied) < 2:
        return
    names = [table.header[i] for i in tied]
    if len({_normalise_header(name) for name in names}) == 1:
        _refuse_duplicate(table, names[0], len(tied))
    candidates = " or ".join(f"'{short(name)}'" for name in names)
    raise ValueError(f"{table.source}: cannot tell which column holds the {role} ({candidates}; columns found: "
                     f"{list_columns(table.header)}). Choose one with {option}.")


def _refuse_duplicate(table: RawTable, name: str, count: int) -> None:
    raise ValueError(f"{table.source}: duplicate column '{short(name)}' appears {count} times (columns found: "
                     f"{list_columns(table.header)}). Rename or remove the extra one so it is clear which to use.")


def _find_given_column(table: RawTable, given: str, option: str) -> int:
    normal = _normalise_header(str(given))
    matches = [i for i, name in enumerate(table.header) if _normalise_header(name) == normal]
    if len(matches) > 1:
        _refuse_duplicate(table, table.header[matches[0]], len(matches))
    if matches:
        return matches[0]
    if str(given) in table.frame.columns:  # a name read_table made up, e.g. "Unnamed: 2" or "notes.1"
        return list(table.frame.columns).index(str(given))
    raise ValueError(f"{table.source}: column '{short(str(given))}' ({option}) not found (columns found: "
                     f"{list_columns(table.header)}). Pass one of the columns found.")


def _missing_columns_message(source: str, header: list[str], question_missing: bool, answer_missing: bool) -> str:
    found = list_columns(header)
    if len(header) == 1:
        found += f"; only one column, so the delimiter may not be one of {', '.join(map(delimiter_name, DELIMITERS))}"
    if question_missing and answer_missing:
        return (f"{source}: missing columns 'question' and 'answer' (columns found: {found}). "
                "Rename columns to 'question' and 'answer', or name them with --question-column and --answer-column")
    role = "question" if question_missing else "answer"
    return (f"{source}: missing column '{role}' (columns found: {found}). "
            f"Rename a column to '{role}', or name it with --{role}-column")

# -----------------------------------------------------------------------------
# cleaning


def _clean(table: RawTable, q_idx: int, a_idx: int, drop_duplicates: bool, warnings: list[str],
           strip_html: bool = False) -> QAData:
    raw, rows, source = table.frame, table.row_numbers, table.source
    q_raw = raw.iloc[:, q_idx].fillna("")
    a_raw = raw.iloc[:, a_idx].fillna("")
    warnings = list(table.warnings) + warnings
    # 0) text repairs before anything is compared, each counted: line ends as LF, invisible characters
    # out, HTML counted (and stripped)
    q_text, q_breaks = content.unify_line_ends(q_raw)
    a_text, a_breaks = content.unify_line_ends(a_raw)
    q_text, q_cells, q_chars = content.remove_invisible(q_text)
    a_text, a_cells, a_chars = content.remove_invisible(a_text)
    html_cells = {"question": content.html_cells(q_text), "answer": content.html_cells(a_text)}
    if strip_html:
        q_text, a_text = content.strip_html_column(q_text), content.strip_html_column(a_text)
    question, answer = content.strip_cells(q_text), content.strip_cells(a_text)
    references, listed, repeated = None, np.zeros(len(raw), dtype=bool), np.zeros(len(raw), dtype=np.int64)
    if table.file_format in ("json", "jsonl"):
        answer, references, listed, repeated = _answer_lists(answer)
    # which cells stripping changed (counted on the kept rows below): the unstripped text is let go
    q_changed = (q_text != question).to_numpy(dtype=bool)
    a_changed = (a_text != answer).to_numpy(dtype=bool) & ~listed
    del q_raw, a_raw, q_text, a_text

    # 1) rows without both halves can't be trained on
    q_empty, a_empty = (question == "").to_numpy(dtype=bool), (answer == "").to_numpy(dtype=bool)
    empty = q_empty | a_empty
    blank = np.zeros(len(raw), dtype=bool)
    both = q_empty & a_empty
    if both.any():  # a row with every cell empty is a blank row; only look at the few candidates
        candidates = take_rows(raw, np.flatnonzero(both)).fillna("")
        blank[both] = candidates.apply(lambda column: column.str.strip() == "").all(axis=1).to_numpy()
    reasons = np.select([blank, both, q_empty, a_empty],
                        ["blank row", "empty question and answer", "empty question", "empty answer"], default="")
    reasons = reasons.astype(object)

    # 2) exact repeats teach nothing new and over-weight those pairs
    nonempty = np.flatnonzero(~empty)
    q_nonempty, a_nonempty = take_rows(question, nonempty), take_rows(answer, nonempty)
    firsts = exact_firsts(q_nonempty, a_nonempty)  # within the non-empty rows
    repeats = firsts != np.arange(len(firsts))
    n_repeats = int(repeats.sum())
    duplicate = np.zeros(len(raw), dtype=bool)
    if n_repeats and drop_duplicates:
        duplicate[nonempty[repeats]] = True
        reasons[duplicate] = "duplicate of row " + rows[nonempty[firsts[repeats]]].astype(str).astype(object)
    kept = ~empty & ~duplicate

    if not kept.any():
        first = int(np.flatnonzero(empty)[0])
        raise ValueError(f"{source}: no usable rows: all {len(raw):,} data rows have an empty question or answer "
                         f"(first: row {rows[first]}, {reasons[first]}). Fill in both the "
                         f"'{short(table.header[q_idx])}' and '{short(table.header[a_idx])}' cells.")

    # 3) oddities worth knowing about, but the rows are kept. Duplicates are counted on every
    # non-empty row, before the exact ones are dropped, so the count is the file's, not 0.
    # normalised texts as codes (equal codes, equal texts): once, since a million rows take seconds
    q_all, a_all = normalised_codes(q_nonempty, a_nonempty)
    # `repeats` was found on these very rows: not hashed a second time
    duplicates = duplicate_counts(q_nonempty, a_nonempty, q_all, a_all, exact=repeats)
    del q_nonempty, a_nonempty
    at = np.flatnonzero(kept)
    question, answer, kept_rows = take_rows(question, at), take_rows(answer, at), rows[kept]
    kept_of_nonempty = kept[~empty]
    q_normal, a_normal = q_all[kept_of_nonempty], a_all[kept_of_nonempty]
    pairs = pd.DataFrame({"q": q_normal, "a": a_normal}).drop_duplicates()
    answers_per_question = pairs["q"].value_counts()
    conflicting = answers_per_question.index[answers_per_question > 1].to_numpy()
    echo = (q_normal == a_normal) & (q_normal != BLANK)
    stripped = int(q_changed[kept].sum() + a_changed[kept].sum())

    dropped_empty = int(empty.sum())
    if dropped_empty:
        warnings.append(f"Dropped {dropped_empty:,} row(s) with an empty question or answer "
                        f"({list_rows(rows[empty])}).")
    if drop_duplicates and n_repeats:
        warnings.append(f"Dropped {n_repeats:,} exact duplicate question/answer pair(s) "
                        f"({list_rows(rows[duplicate])}); the first copy is kept.")
    elif n_repeats:
        warnings.append(f"Kept {n_repeats:,} exact duplicate question/answer pair(s) (drop_duplicates=False).")
    if len(conflicting):
        in_conflict = np.isin(q_normal, conflicting)
        first = int(np.flatnonzero(in_conflict)[0])
        warnings.append(f"{len(conflicting):,} question(s) appear with different answers (first at row "
                        f"{kept_rows[first]}: '{short(question.iloc[first])}'); all are kept.")
    if echo.any():
        warnings.append(f"{int(echo.sum()):,} row(s) have an answer identical to the question "
                        f"({list_rows(kept_rows[echo])}); kept.")
    if stripped:
        warnings.append(f"Stripped leading/trailing whitespace from {stripped:,} cell(s).")
    if q_breaks or a_breaks:
        warnings.append(f"Changed the Windows (CR LF) or old Mac (CR) line breaks inside {q_breaks + a_breaks:,} "
                        "cell(s) to plain line breaks (LF).")
    if q_chars or a_chars:
        warnings.append(f"Removed {q_chars + a_chars:,} invisible or control character(s) (zero-width space, "
                        f"byte-order mark, ...) from {q_cells + a_cells:,} cell(s).")
    for role, column in (("question", q_idx), ("answer", a_idx)):
        if html_cells[role]:
            done = "tags stripped (strip_html)" if strip_html else "set strip_html to remove the tags"
            warnings.append(f"{html_cells[role]:,} {role} cell(s) in '{short(table.header[column])}' hold HTML "
                            f"markup; {done}.")

    frame = pd.DataFrame({"question": question, "answer": answer}).reset_index(drop=True)
    n_lists, n_references, list_cells, list_repeats = 0, len(frame), 0, 0
    if references is not None:
        kept_references = references[kept].reset_index(drop=True)
        sizes = kept_references.map(len)
        n_lists, n_references = int(sizes.gt(1).sum()), int(sizes.sum())
        in_lists = listed[kept]
        list_cells, list_repeats = int(in_lists.sum()), int(repeated[kept].sum())
        if n_lists:
            frame["references"] = kept_references
        if list_cells:  # one unit per number: cells, then the answers in them
            warnings.append(
                f"{list_cells:,} of {len(frame):,} answer cells in '{short(table.header[a_idx])}' are lists, holding "
                f"{int(sizes[in_lists].sum()):,} answers ({n_lists:,} cells with more than one)"
                + (f"; {list_repeats:,} answers repeated within their list were removed" if list_repeats else "")
                + ": training uses the first of each (answer_lists=each: one example per answer); "
                "all are references for scoring.")
    report = DataReport(
        source=source, file_format=table.file_format, encoding=table.encoding, delimiter=table.delimiter,
        columns_found=list(table.header), question_column=table.header[q_idx], answer_column=table.header[a_idx],
        rows_read=len(raw), rows_kept=len(frame), dropped_empty=dropped_empty,
        dropped_duplicates=int(duplicate.sum()), conflicting_questions=len(conflicting),
        question_equals_answer=int(echo.sum()), warnings=warnings, duplicates=duplicates,
        line_break_cells=q_breaks + a_breaks, invisible_cells=q_cells + a_cells,
        invisible_chars=q_chars + a_chars, html_cells=html_cells, html_stripped=strip_html, list_answers=n_lists,
        references=n_references, list_cells=list_cells, list_repeats=list_repeats)
    return QAData(frame=frame, rejected=_rejected_frame(raw, rows, reasons, ~kept), report=report)


def _answer_lists(answer: pd.Series) -> tuple[pd.Series, pd.Series | None, np.ndarray, np.ndarray]:
    """JSON lists in the answer cells: (first answer of each, all answers of each, which cells were
    lists, answers each list repeated: removed).

    The JSON reader wrote a list value as its JSON text; a list of strings (or numbers) is a set of
    acceptable answers, as in SQuAD or Natural Questions files. An item is stripped, as a cell is, and
    otherwise kept as written: no change to its text goes uncounted.
    """
    import json

    maybe = answer.str.startswith("[")
    listed = np.zeros(len(answer), dtype=bool)
    repeated = np.zeros(len(answer), dtype=np.int64)
    if not maybe.any():
        return answer, None, listed, repeated
    references = answer.map(lambda text: [text] if text else [])
    first = answer.copy()
    for i in np.flatnonzero(maybe.to_numpy()):
        try:
            value = json.loads(answer.iloc[i])
        except ValueError:
            continue
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
            continue
        items = [item for item in (str(v).strip() for v in value if not isinstance(v, bool)) if item]
        once = list(dict.fromkeys(items))  # in order, once each
        references.iloc[i] = once
        first.iloc[i] = once[0] if once else ""
        listed[i], repeated[i] = True, len(items) - len(once)
    return first, references, listed, repeated


def _rejected_frame(raw: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray, dropped: np.ndarray) -> pd.DataFrame:
    original = take_rows(raw, np.flatnonzero(dropped))
    # keep our two columns unambiguous even if the file has its own "row"/"reason"
    original.columns = [f"{name} (original)" if name in ("row", "reason") else name for name in original.columns]
    rejected = pd.concat([pd.DataFrame({"row": rows[dropped].astype(np.int64),
                                        "reason": pd.Series(reasons[dropped], dtype="str")}), original], axis=1)
    return rejected.sort_values("row", kind="stable").reset_index(drop=True)
