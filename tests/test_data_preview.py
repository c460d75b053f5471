"""The Data tab's preview is what trains: it prepares the data through the function `check` and `train`
use, with the same options (HTML stripped, long examples dropped, the context of the base model the Checks tab names), so its
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


def test_preview_measures_against_the_base_model_the_checks_tab_names(client, capsys, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt2tune.model import load_tokenizer
    from gpt2tune.paths import TOKENIZER_DIR, work_dir

    # a model whose context (128 tokens) is shorter than the examples, unlike the app's default (1,024)
    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    short = work_dir() / "models" / "short-context"  # the app loads folders inside its working folder
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1,
                               n_head=2)).save_pretrained(short)
    tokenizer.save_pretrained(short)
    path = write_rows(tmp_path / "long.csv", [(f"Question {i}?", f"{LONG} {i}") for i in range(20)])

    def length_line(summary: str) -> str:
        return next(line.removeprefix("- ").strip() for line in summary.splitlines() if "max_length" in line)

    _, default_summary, *_ = client.predict(file=handle_file(str(path)), api_name="/preview")
    _, summary, histogram, *_ = client.predict(file=handle_file(str(path)), base_model=str(short), api_name="/preview")
    printed = check(capsys, "--csv", path, "--base-model", short)
    line = next(line.strip() for line in printed.splitlines() if line.strip().startswith("max_length"))
    assert "128" in line and length_line(summary) == line
    assert length_line(default_summary) != line  # the default model's context fits these examples whole
    # every example is drawn as truncated; the plot keeps both colours (a zero bar for "fits"), since it
    # keeps the colour scale of its first drawing, where every example fitted
    examples = {}
    for tokens, count, kind in histogram["value"]["data"]:
        examples[kind] = examples.get(kind, 0) + count
    assert examples == {"truncated": 20, "fits": 0}
