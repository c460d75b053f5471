"""Large delimited files go through Arrow: the same table, row numbers, report and errors as the general reader.

The Arrow path starts at 8 MiB; here the threshold is lowered so that small files exercise it, and
each result is compared with the general reader's on the same bytes.
"""

from __future__ import annotations

import pytest

from gpt2tune.data import tables
from gpt2tune.data.load import load_qa_data

CASES = {
    "plain": b"question,answer\nWhat is 2+2?,4\nWho wrote it?,Me\n",
    "bom and CRLF": b"\xef\xbb\xbfquestion,answer\r\nWhat is 2+2?,4\r\n\"A cell\r\nover lines?\",yes\r\n",
    "tsv": b"question\tanswer\tnote\nWhy?\tBecause\tx\nHow?\t\tempty answer\n",
    "semicolon, quotes, duplicates": b'q;a\n"Say ""hi"";ok";fine\nSame;same\nSame;same\n  padded  ; a \n',
    "blank line": b"question,answer\nA?,a\n\nB?,b\n",
    "ragged row": b"question,answer\nA?,a\nB?,b,extra\n",
    "invalid utf-8": b"question,answer\nCaf\xe9?,yes\nTea?,no\n",
}


def _load(path, arrow: bool, monkeypatch):
    monkeypatch.setattr(tables, "ARROW_MIN_BYTES", 0 if arrow else 1 << 60)
    try:
        return load_qa_data(path), None
    except ValueError as error:
        return None, str(error)


@pytest.mark.parametrize("name", CASES)
def test_arrow_reads_what_the_general_reader_reads(name, tmp_path, monkeypatch):
    suffix = ".tsv" if name == "tsv" else ".csv"
    path = tmp_path / f"data{suffix}"
    path.write_bytes(CASES[name])
    arrow, arrow_error = _load(path, True, monkeypatch)
    general, general_error = _load(path, False, monkeypatch)
    assert arrow_error == general_error
    if general is None:
        return
    assert arrow.report == general.report
    assert arrow.frame.astype(object).equals(general.frame.astype(object))
    assert arrow.rejected.astype(str).equals(general.rejected.astype(str))


def test_a_plain_file_takes_the_arrow_path(tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_bytes(CASES["bom and CRLF"])
    monkeypatch.setattr(tables, "ARROW_MIN_BYTES", 0)
    table = tables._read_large_delimited(path, path.name, None)
    assert table is not None and str(table.frame.dtypes.iloc[0]) == "string"
    assert table.header == ["question", "answer"] and table.encoding == "utf-8-sig"
    assert table.frame.iloc[1, 0] == "A cell\r\nover lines?"  # as written: cleaning changes and counts it
    assert table.row_numbers.tolist() == [2, 3]


@pytest.mark.parametrize("name", ["blank line", "ragged row", "invalid utf-8"])
def test_unusual_files_fall_back_to_the_general_reader(name, tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_bytes(CASES[name])
    monkeypatch.setattr(tables, "ARROW_MIN_BYTES", 0)
    assert tables._read_large_delimited(path, path.name, None) is None


def test_a_file_read_in_many_blocks_cleans_as_one(tmp_path, monkeypatch):
    """Stripping keeps untouched blocks as they are and picking rows works block by block: with blocks of
    a few rows, the cleaned rows, the rejected rows (duplicates name their first row) and the report equal
    the general reader's."""
    rows = ["question,answer"]
    for i in range(300):
        question = f"Question {i % 120}?" if i % 7 else f"  Padded question {i}?  "
        rows.append(f"{question},{'' if i % 53 == 0 else f'Answer {i % 120}'}")
    path = tmp_path / "blocks.csv"
    path.write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(tables, "_SCAN_BLOCK", 256)  # ~20 rows a block
    arrow, _ = _load(path, True, monkeypatch)
    assert arrow.frame["question"].array.__arrow_array__().num_chunks > 10
    general, _ = _load(path, False, monkeypatch)
    assert arrow.frame.astype(object).equals(general.frame.astype(object))
    assert arrow.rejected.astype(str).equals(general.rejected.astype(str))
    assert arrow.report == general.report
    # by hand: i=121 (spreadsheet row 123) repeats i=1 (row 3); i=0 (row 2) has an empty answer
    reasons = dict(zip(arrow.rejected["row"], arrow.rejected["reason"]))
    assert reasons[123] == "duplicate of row 3" and reasons[2] == "empty answer"


def test_strip_cells_copies_only_the_blocks_it_changes():
    import pandas as pd
    import pyarrow as pa

    from gpt2tune.data.content import strip_cells

    blocks = [pa.array(["a", "b"]), pa.array([" c", "d\t"]), pa.array(["e", "f"])]
    column = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(blocks)))
    stripped = strip_cells(column)
    assert stripped.tolist() == column.str.strip().tolist() == list("abcdef")
    after = stripped.array.__arrow_array__().chunks
    same = [a.buffers()[2].address == b.buffers()[2].address for a, b in zip(after, blocks)]
    assert same == [True, False, True]


def test_take_rows_equals_iloc_in_any_order():
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from gpt2tune.data.tables import take_rows

    text = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(list("abc")), pa.array(list("defg"))])))
    frame = pd.DataFrame({"question": text, "answer": text.str.upper(), "references": [[c] for c in "abcdefg"]})
    for positions in ([6, 0, 3], [], [2], [1, 2, 3], list(range(7)), list(range(7))[::-1]):
        taken = take_rows(frame, np.array(positions, dtype=np.int64))
        expected = frame.iloc[positions].reset_index(drop=True)
        assert taken.equals(expected) and list(taken.dtypes) == list(expected.dtypes)
    assert take_rows(pd.Series(["x", "y", "z"], dtype=object), [2, 0]).tolist() == ["z", "x"]


TAKE_MEMORY = """
import numpy as np, pandas as pd, pyarrow as pa
from gpt2tune.data.tables import take_rows
def peak():
    return [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
blocks = [pa.array(["x" * 1000] * 10_000) for _ in range(20)]  # 20 blocks of 10 MB
column = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(blocks)))
before = peak()
picked = take_rows(column, [190_000, 5, 100_000])
after_take_rows = peak()
naive = column.iloc[[190_000, 5, 100_000]]
print(after_take_rows - before, peak() - after_take_rows)
"""


def test_take_rows_picks_a_few_rows_without_copying_the_column():
    """Arrow's own gather joins a column's blocks first (here 200 MB copied to pick three rows); take_rows
    filters block by block. The naive way is measured beside it, so the test shows it can fail."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", TAKE_MEMORY], capture_output=True, text=True, check=True)
    take_rows_growth, naive_growth = map(int, done.stdout.split())
    assert take_rows_growth < 20 * 2**20 < 150 * 2**20 < naive_growth
