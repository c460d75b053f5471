"""What is in the text itself: invisible characters, HTML markup and the language of the rows.

GPT-2 was trained on English web text. A column of HTML (`<div class="panel"><p>…`) teaches it to
emit markup, a file that is mostly German teaches a model that barely knows German, and a zero-width
space makes two identical-looking questions different strings. None of these stops training, so
each becomes a counted warning before any time is spent.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from gpt2tune.data.tables import arrow_text, text_series

# Characters that render as nothing: zero-width space, word joiner, byte-order mark, soft hyphen,
# bidirectional marks and embeddings, Mongolian vowel separator, and C0/C1 controls except tab and
# newline. Zero-width (non-)joiners are kept: emoji sequences and Persian or Indic words need them.
INVISIBLE = re.compile(
    "[\u200b\u2060\ufeff\u00ad\u200e\u200f\u202a-\u202e\u2066-\u2069\u180e"
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)
# A tag of the HTML vocabulary, opening, closing or self-closing; a bare "<" or "a < b" is not markup.
HTML_TAG = re.compile(
    r"</?(?:p|div|span|br|hr|a|b|i|u|s|em|strong|small|sub|sup|code|pre|blockquote|ul|ol|li|dl|dt|dd"
    r"|table|thead|tbody|tr|td|th|h[1-6]|img|font|section|article|header|footer|nav|main|figure"
    r"|label|input|form|button|script|style|iframe|body|html|head|title|meta|link)\b[^<>]*>",
    re.IGNORECASE,
)
_BLOCK_BREAK = re.compile(r"<(?:br|hr)\b[^<>]*>|</(?:p|div|li|tr|h[1-6]|blockquote|pre|table|ul|ol)\s*>",
                          re.IGNORECASE)
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^<>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
LANGUAGE_SAMPLE = 200  # rows whose language is detected: enough for a share to 2-3 percentage points
MIN_LETTERS = 12  # shorter texts are too short for a reliable guess and are not counted
NON_ENGLISH_WARN = 0.2  # warn when more than this share of the sampled rows is not English


def unify_line_ends(values: pd.Series) -> tuple[pd.Series, int]:
    """(values with each CR LF or lone CR inside a cell as LF, cells changed).

    A file saved on Windows can hold CR LF inside a quoted cell; GPT-2 reads "\r\n" as other tokens
    than "\n", so one multi-line answer would teach two kinds of line break.
    """
    changed = values.str.contains("\r", regex=False, na=False)
    if not changed.any():
        return values, 0
    cleaned = values.copy()
    cleaned[changed] = values[changed].str.replace("\r\n", "\n", regex=False).str.replace("\r", "\n", regex=False)
    return cleaned, int(changed.sum())


def remove_invisible(values: pd.Series) -> tuple[pd.Series, int, int]:
    """(values without invisible characters, cells changed, characters removed)."""
    values = values.fillna("")
    found = values.str.count(INVISIBLE.pattern)
    if not found.any():
        return values, 0, 0
    cleaned = values.copy()
    changed = found > 0
    cleaned[changed] = values[changed].str.replace(INVISIBLE, "", regex=True)
    return cleaned, int(changed.sum()), int(found.sum())


def strip_cells(values: pd.Series) -> pd.Series:
    """Leading and trailing whitespace off every cell (as `str.strip` does).

    A large file's column is Arrow text in blocks: each block is stripped on its own and kept as it
    was when nothing in it changes, so a clean column is not copied (a million answers: 0.3 GiB).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    blocks = arrow_text(values)
    if blocks is None:
        return values.str.strip()
    stripped = []
    for block in blocks.chunks:
        trimmed = pc.utf8_trim_whitespace(block)
        stripped.append(block if trimmed.equals(block) else trimmed)
    return text_series(pa.chunked_array(stripped, type=blocks.type), like=values, index=values.index)


def html_cells(values: pd.Series) -> int:
    """Cells holding at least one HTML tag."""
    return int(values.fillna("").str.contains(HTML_TAG).sum())


def strip_html(text: str) -> str:
    """The text a browser would show: tags removed, block ends as line breaks, entities decoded."""
    text = _SCRIPT_STYLE.sub("", text)
    text = _BLOCK_BREAK.sub("\n", text)
    text = HTML_TAG.sub("", text)
    text = html.unescape(text)
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def strip_html_column(values: pd.Series) -> pd.Series:
    values = values.fillna("")
    marked = values.str.contains(HTML_TAG)
    if not marked.any():
        return values
    values = values.copy()
    values[marked] = values[marked].map(strip_html)
    return values


def language_counts(texts, seed: int = 0, sample: int = LANGUAGE_SAMPLE) -> dict[str, int]:
    """Detected language (ISO 639-1) of up to `sample` texts drawn at random with `seed`, counted.

    `langdetect` (a port of Google's language-detection, profiles bundled: works offline) is made
    deterministic by its own seed. Texts with fewer than MIN_LETTERS letters are skipped.
    """
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0
    texts = pd.Series(list(texts), dtype="object").astype(str)
    if len(texts) > sample:
        texts = texts.sample(n=sample, random_state=seed)
    counts: dict[str, int] = {}
    for text in texts:
        if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
            continue
        try:
            language = detect(text)
        except LangDetectException:
            continue
        counts[language] = counts.get(language, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def language_summary(counts: dict[str, int]) -> tuple[float, str]:
    """(share of detected rows that are not English, one sentence)."""
    total = sum(counts.values())
    if not total:
        return 0.0, "language: too little text to tell"
    other = total - counts.get("en", 0)
    share = other / total
    top = ", ".join(f"{lang} {n}" for lang, n in list(counts.items())[:4])
    return share, (f"language: {other:,} of {total:,} sampled rows ({100 * share:.0f}%) are not English "
                   f"(detected: {top})")
