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
    assert table.frame.iloc[1, 0] == "A cell\nover lines?"
    assert table.row_numbers.tolist() == [2, 3]


@pytest.mark.parametrize("name", ["blank line", "ragged row", "invalid utf-8"])
def test_unusual_files_fall_back_to_the_general_reader(name, tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_bytes(CASES[name])
    monkeypatch.setattr(tables, "ARROW_MIN_BYTES", 0)
    assert tables._read_large_delimited(path, path.name, None) is None
