"""Data: everything between a user's file and the token rows training reads.

`tables` reads a file (encodings, delimiters, JSON), `load` picks and cleans the question/answer
columns and counts what it dropped, `report` describes the data before training (lengths, duplicates,
leakage), `prompt` is the one template, `prep` tokenizes, packs and splits, and `tokcache` keeps the
tokenized rows on disk so a rerun skips that work.
"""
