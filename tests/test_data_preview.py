"""The Data tab's preview is what trains: it prepares the data through the function `check` and `train`
use, with the same options (HTML stripped, long examples dropped, the app's base model's context), so its
lines are `check`'s lines. The app runs in this process and is driven through gradio_client."""

from __future__ import annotations

import pytest
from app_server import app_url  # noqa: F401  (a fixture)
from gradio_client import Client, handle_file
from test_resolved import LONG, check, write_rows


@pytest.fixture(scope="module")
def client(app_url):  # noqa: F811
    return Client(app_url, verbose=False)


def test_preview_says_what_check_says_on_the_same_options(client, capsys, tiny_model_dir, tmp_path):
    rows = []
    for i in range(30):
        question = f"What is <b>item {i}</b>?"
        rows += [(question, f"<p>Item {i}</p> is short."), (question, f"{LONG} {i}")]
    path = write_rows(tmp_path / "html.csv", rows)
    options = {"max_length": 64, "overlong": "drop", "strip_html": True, "eval_fraction": 0.25, "seed": 5}
    # the app's base model (the tiny model here): its context, as `check --base-model` uses it
    _, summary, *_ = client.predict(file=handle_file(str(path)), **options, api_name="/preview")
    printed = check(capsys, "--csv", path, "--base-model", tiny_model_dir, "--max-length", 64, "--overlong", "drop",
                    "--strip-html", "--eval-fraction", 0.25, "--seed", 5)
    shown = {line.removeprefix("- ").strip() for line in summary.splitlines()}
    for start in ("max_length 64 (set)", "30 examples are longer than 64 tokens", "leakage:", "duplicates:"):
        line = next(line.strip() for line in printed.splitlines() if line.strip().startswith(start))
        assert line in shown, (line, summary)
    assert "<b>" not in summary  # stripped, as trained
