"""The app through its HTTP API (gradio_client), as a script or another program would drive it.

One app, launched in this process, serves the whole file (see app_server.py); trainings are tiny.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_server import app_url, launch_app_process  # noqa: F401  (app_url is a fixture)
from bad_inputs import CASES, write_case
from conftest import SAMPLE_CSV
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

NAMED_ENDPOINTS = ("/preview", "/checks", "/train", "/stop", "/resume", "/generate", "/push", "/load", "/status",
                   "/runs")
# Small and fast, but enough steps for a curve: used by every training here.
QUICK = dict(question_column=None, answer_column=None, max_length=64, batch_size=4, learning_rate=2e-3,
             logging_steps=1, eval_steps=3, save_steps=3, warmup_ratio=0.0, eval_answer_samples=0)


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def finished_run(client):
    """Train 6 steps through /train; every streamed update is kept."""
    job = client.submit(run_name="api-run", max_steps=6, probe_questions="What is gpt2tune?\n", **QUICK,
                        api_name="/train")
    updates = list(job)
    return "api-run", updates, job.outputs()[-1]


def alert_text(outputs) -> str:
    """The Train tab's inline alert (its 7th output) as text."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", outputs[6] or "")).strip()


def plot_rows(plot) -> list:
    """The rows of a plot output (a value, an update wrapping one, or nothing yet)."""
    if plot and plot.get("__type__") == "update":
        plot = plot.get("value")
    return plot["data"] if plot else []


def loss_points(update) -> list:
    """Rows of (step, loss, series) of the loss plot; a row without a loss only names a curve to come."""
    return [row for row in plot_rows(update[1]) if row[1] is not None]


def greedy_by_hand(folder, question: str, max_new_tokens: int) -> str:
    """What the app's default decoding (greedy, repetition penalty 1.1) should answer, with plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpt2tune.data.prompt import format_prompt

    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(format_prompt(question), return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=max_new_tokens, repetition_penalty=1.1,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_view_api_lists_the_named_endpoints(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(NAMED_ENDPOINTS) <= set(endpoints)
    train_parameters = {p["parameter_name"] for p in endpoints["/train"]["parameters"]}
    assert {"learning_rate", "max_steps", "early_stopping_patience", "probe_questions", "run_name"} <= train_parameters


def test_preview_of_the_sample(client):
    stats, summary, histogram, table, rejected, _ = client.predict(
        file=handle_file(str(SAMPLE_CSV)), max_length=64, api_name="/preview")
    assert "200" in stats and "Rows kept" in stats
    assert "sample_qa.csv" in summary and "tokens per example" in summary
    assert "max_length 64 (set): fits" in summary and "examples are longer than 64 tokens" in summary
    assert len(table["data"]) == 20 and table["headers"] == ["question", "answer"]
    counts = histogram["value"]["data"]  # (length, examples, fits or truncated)
    assert sum(row[1] for row in counts) == 200
    assert {row[2] for row in counts} == {"fits", "truncated"}  # some are over 64 tokens
    assert all((row[0] > 64) == (row[2] == "truncated") for row in counts)
    assert rejected["data"] == [] or rejected["data"] == [[""] * len(rejected["headers"])]


def test_preview_offers_column_mapping(client, tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("id,prompt,response\n1,Hi?,Hello\n2,Bye?,See you\n")
    question, answer = client.predict(handle_file(str(path)), api_name="/columns")
    assert (question["value"], answer["value"]) == ("prompt", "response")
    assert [value for _, value in question["choices"]] == ["id", "prompt", "response"]
    _, summary, *_ = client.predict(file=handle_file(str(path)), question_column="prompt", answer_column="response",
                                    api_name="/preview")
    assert "question ← `prompt`, answer ← `response`" in summary


def test_preview_counts_duplicates_before_dropping_them_and_chooses_the_length(client, tmp_path):
    from gpt2tune.model import load_tokenizer
    from gpt2tune.paths import TOKENIZER_DIR

    path = tmp_path / "dups.csv"
    path.write_text("question,answer\nWhat is X?,An x.\nWhat is X?,An x.\nWhat is Y?,A y.\nWhat is Z?,A z.\n")
    stats, summary, *_ = client.predict(file=handle_file(str(path)), max_length=0, api_name="/preview")
    assert "1 exact" in stats  # the loader dropped it, the report still counts it
    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    longest = max(len(tokenizer(f"Question: {q}\nAnswer:")["input_ids"]) + len(tokenizer(" " + a)["input_ids"]) + 1
                  for q, a in [("What is X?", "An x."), ("What is Y?", "A y."), ("What is Z?", "A z.")])
    assert longest <= 64
    assert "max_length 64 (auto: the smallest multiple of 64 fitting 99% of examples): fits 3 of 3" in summary


def test_rejected_rows_can_be_downloaded(client, tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("question,answer\nq1,a1\n,no question\nq3,\nq1,a1\n")
    _, _, _, _, rejected, download = client.predict(file=handle_file(str(path)), api_name="/preview")
    assert len(rejected["data"]) == 3
    assert download["visible"] is True
    assert Path(download["value"]).read_text(encoding="utf-8-sig").splitlines()[0].startswith("row,reason")


BAD_CASES = [case for case in CASES if case.expect_error is not None]


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda case: case.name)
def test_bad_file_shows_the_core_message(client, tmp_path, case):
    from gpt2tune.data.load import load_qa_data

    path = write_case(case, tmp_path)
    with pytest.raises(ValueError) as core:
        load_qa_data(path)
    assert case.expect_error in str(core.value)
    with pytest.raises(AppError) as shown:
        client.predict(file=handle_file(str(path)), api_name="/preview")
    # the same line, with the CLI's flags in the app's words (boxes and tabs)
    assert case.expect_error in str(shown.value)
    assert "--" not in str(shown.value) and "_column=" not in str(shown.value)
    assert "Traceback" not in str(shown.value)


@pytest.mark.parametrize("speedup, precision, why", [(4.0, "bf16", "bf16 matrices 4.0x faster than fp32"),
                                                      (0.7, "fp32", "bf16 matrices at only 0.7x fp32")])
def test_checks_report_vocabulary_tokens_and_devices(client, tiny_model_dir, monkeypatch, speedup, precision, why):
    """The precision shown is the one the measured bf16 speed-up calls for: the measurement is injected
    (a CPU with bf16 instructions, no GPU), so the choice does not hang on this machine's kernels."""
    import torch

    import gpt2tune.device as device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setenv(device.BF16_SPEEDUP_ENV, str(speedup))
    verdict, report = client.predict(question_column=None, answer_column=None, base_model=str(tiny_model_dir),
                                     api_name="/checks")
    assert "Vocabulary" in verdict and "Precision" in verdict
    assert "| tokenizer size | 50,257 tokens |" in report
    assert "end of text (EOS) | 50256" in report
    assert "| CPU |" in report and f"**Chosen:** cpu with **{precision}**" in report
    assert why in report


@pytest.mark.slow
def test_training_streams_losses_then_final_metrics(finished_run):
    _, updates, final = finished_run
    point_counts = [len(loss_points(update)) for update in updates]
    assert len(set(point_counts)) >= 3, point_counts  # the curve grew while training ran
    assert point_counts == sorted(point_counts)
    assert any(row[2] == "eval" for row in loss_points(final))
    status, _, metrics_html, metrics, probes, log = final[:6]
    assert "Finished" in status and "Train loss" in metrics_html
    assert {row[1] for row in probes["data"]} == {"What is gpt2tune?"}  # the probe timeline
    assert {row[0] for row in probes["data"]} >= {3, 6}  # answered at every eval
    assert metrics["global_step"] == 6 and metrics["train_loss"] > 0
    assert "train:" in log  # the preparation summary reached the log


@pytest.mark.slow
def test_a_reloaded_page_sees_the_last_run(client, finished_run):
    status, plot, *_ = client.predict(api_name="/status")
    assert "Finished" in status and "api-run" in status
    assert len(plot_rows(plot)) == len(loss_points(finished_run[2]))


@pytest.mark.slow
def test_runs_lists_the_trained_run(client, finished_run):
    table, chosen, curves = client.predict(chosen=[], api_name="/runs")
    names = [row[0] for row in table["data"]]
    assert "api-run" in names and "api-run" in chosen["value"]  # newest runs are plotted by default
    assert {row[0] for row in plot_rows(curves)} >= {"api-run"}


@pytest.mark.slow
def test_second_start_is_busy_and_stop_saves_a_model(client, app_url):
    job = client.submit(run_name="stopped-run", max_steps=400, **QUICK, api_name="/train")
    for update in job:
        if loss_points(update):
            break  # it is training
    busy = Client(app_url, verbose=False).predict(run_name="other", max_steps=5, **QUICK, api_name="/train")
    assert "run 'stopped-run' is training (step" in alert_text(busy)
    client.predict(api_name="/stop")
    list(job)
    status, _, _, metrics, _, _ = job.outputs()[-1][:6]
    assert "Stopped" in status
    assert 0 < metrics["global_step"] < 400
    # the model saved at that step is a usable one
    fine, _ = client.predict(question="Hi?", source="Trained run", run="stopped-run", model_id="", compare=False,
                             max_new_tokens=3, seed=None, api_name="/generate")
    from gpt2tune.runs.store import run_dir

    assert fine == greedy_by_hand(run_dir("stopped-run"), "Hi?", 3)


@pytest.mark.slow
def test_generate_streams_next_to_the_base_model(client, finished_run, tiny_model_dir):
    job = client.submit(question="What is gpt2tune?", source="Trained run", run=finished_run[0], model_id="",
                        compare=True, max_new_tokens=12, seed=None, api_name="/generate")
    outputs = list(job)
    answers = [fine for fine, _ in outputs]
    assert len(set(answers)) >= 3  # it streamed: the answer grew in several steps
    final_fine, final_base = job.outputs()[-1]
    from gpt2tune.runs.store import run_dir

    assert final_fine == greedy_by_hand(run_dir(finished_run[0]), "What is gpt2tune?", 12)
    assert final_base == greedy_by_hand(tiny_model_dir, "What is gpt2tune?", 12)  # the app's base model here
    assert all(final_fine.startswith(partial) for partial in answers if partial)


@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", [
    (dict(question="  "), "the question is empty"),
    (dict(source="Folder or Hub id", model_id="/etc"), "is outside the working folder"),
    (dict(temperature=0, do_sample=True), "temperature must be greater than 0"),
    (dict(run="../escape"), "run name '../escape' is not valid"),
    # the limit and what to do, not only "too long"
    (dict(question="word " * 1100), r"the model reads at most 1,024; shorten it to under 1,0\d\d tokens"),
])
def test_generate_refuses_bad_input_with_one_line(client, finished_run, overrides, message):
    arguments = dict(question="Why?", source="Trained run", run=finished_run[0], model_id="", compare=False, seed=None)
    with pytest.raises(AppError, match=message) as error:
        client.predict(**{**arguments, **overrides}, api_name="/generate")
    assert "\n" not in str(error.value).strip()


def test_train_refuses_bad_settings(client):
    refused = client.predict(run_name="bad", **{**QUICK, "learning_rate": 0}, api_name="/train")
    assert alert_text(refused) == "⚠️ Learning rate must be greater than 0 (got 0.0)"  # the box, in the app's words
    refused = client.predict(run_name="a/b", **QUICK, api_name="/train")
    assert alert_text(refused).startswith("⚠️ run name 'a/b' is not valid")


@pytest.mark.slow
def test_push_uploads_the_run_without_the_token(client, finished_run, monkeypatch):
    from huggingface_hub import HfApi

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = dict(repo_id=repo_id, **kwargs)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        calls["upload"] = kwargs
        calls["files"] = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    token = "hf_testTokenThatMustNeverBeWritten"
    result = client.predict(run=finished_run[0], repo_id="tester/faq-gpt2", token=token, private=True,
                            api_name="/push")
    assert "https://huggingface.co/tester/faq-gpt2" in result and "private" in result
    assert calls["create"]["repo_id"] == "tester/faq-gpt2" and calls["create"]["private"] is True
    assert calls["upload"]["repo_id"] == "tester/faq-gpt2"
    assert {"model.safetensors", "config.json", "README.md"} <= set(calls["files"])
    assert "checkpoints/*" in calls["upload"]["ignore_patterns"]
    # the run's record and its copy of the training data are not published with the model
    assert {"data/*", "run.json", "events.jsonl"} <= set(calls["upload"]["ignore_patterns"])
    assert not any(token.encode() in content for content in calls["files"].values())


@pytest.mark.slow
def test_push_without_a_repo_id_says_so(client, finished_run):
    with pytest.raises(AppError, match="is not of the form user/name"):
        client.predict(run=finished_run[0], repo_id="no-slash", token="", private=True, api_name="/push")


def test_checks_fall_back_to_the_tiny_model_offline(client):
    _, report = client.predict(question_column=None, answer_column=None, base_model="gpt2", api_name="/checks")
    # HF_HUB_OFFLINE=1 here, so the Hub is unreachable: the report says so and checks the tiny model
    assert report.startswith("> ⚠️ could not reach 'gpt2' on the Hugging Face Hub")
    assert "tiny-gpt2" in report and "| tokenizer size | 50,257 tokens |" in report


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(client, finished_run, monkeypatch):
    from gpt2tune.config import TuneConfig
    from gpt2tune.runs import record

    refused = client.predict(run="never-trained", max_steps=8, epochs=3, api_name="/resume")
    assert alert_text(refused) == "⚠️ no run named 'never-trained': pick one in the run list"
    # the server resolves and checks the resumed settings and the data's fingerprint once per Resume
    calls = {"validate": 0, "data": 0}
    validate, check_data = TuneConfig.validate, record._check_data
    monkeypatch.setattr(TuneConfig, "validate", lambda self: calls.update(validate=calls["validate"] + 1) or validate(self))
    monkeypatch.setattr(record, "_check_data", lambda *a: calls.update(data=calls["data"] + 1) or check_data(*a))
    job = client.submit(run=finished_run[0], max_steps=8, epochs=3, api_name="/resume")
    list(job)
    assert calls == {"validate": 1, "data": 1}
    status, _, _, metrics, _, _ = job.outputs()[-1][:6]
    assert "Finished" in status and metrics["global_step"] == 8
    steps = sorted({row[0] for row in loss_points(job.outputs()[-1]) if row[2] == "train"})
    assert steps[0] == 1 and steps[-1] == 8  # the curve before the checkpoint is kept


@pytest.mark.slow
def test_load_from_the_hub_by_repo_id(tiny_model_dir, tmp_path):
    """The app in a subprocess (HF_ENDPOINT is read at import) against a local Hub serving the tiny model."""
    from hub_server import hub_env, serve_hub_repo

    with serve_hub_repo(tiny_model_dir, "tester/tiny-gpt2", workdir=tmp_path / "hub") as endpoint:
        env = {**os.environ, **hub_env(endpoint, tmp_path / "hf-cache"),
               "GPT2TUNE_HOME": str(tmp_path / "home"), "GPT2TUNE_BASE_MODEL": str(tiny_model_dir)}
        with launch_app_process(env, tmp_path / "app.log") as (url, seconds_to_first_page):
            print(f"python app.py served its page after {seconds_to_first_page:.1f} s")
            hub_client = Client(url, verbose=False)
            message, source, model_id = hub_client.predict("tester/tiny-gpt2", False, api_name="/load")
            assert "Loaded `tester/tiny-gpt2`" in message
            # and it is now the Generate tab's choice
            assert (source["value"], model_id["value"]) == ("Folder or Hub id", "tester/tiny-gpt2")
            fine, _ = hub_client.predict(question="Hello?", source=source["value"], run=None, model_id=model_id["value"],
                                         compare=False, max_new_tokens=4, seed=None, api_name="/generate")
            assert fine == greedy_by_hand(tiny_model_dir, "Hello?", 4)
            with pytest.raises(AppError, match="tester/missing"):
                hub_client.predict("tester/missing", False, api_name="/load")


def test_preview_without_a_file_previews_the_sample(client):
    import pandas as pd

    stats, summary, _, table, _, _ = client.predict(max_length=64, api_name="/preview")
    assert "sample_qa.csv" in summary and "Rows kept" in stats
    sample = pd.read_csv(SAMPLE_CSV)
    assert table["data"][0] == [sample["question"][0], sample["answer"][0]]


def test_api_outputs_are_named(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = {name: [output["label"] for output in endpoint["returns"]] for name, endpoint in endpoints.items()}
    assert names["/preview"] == ["Summary tiles", "Summary", "Length histogram", "First rows (as trained on)",
                                 "Rejected rows", "Download rejected rows (CSV)"]
    assert names["/checks"] == ["Verdict", "Report"]
    # the run view, then the form it loads a run's settings into
    assert names["/train"][:9] == ["Status", "Loss", "Metrics", "All metrics", "Probe timeline", "Log", "Alert", "Run",
                                   "Run summary"]
    assert names["/train"][9] == "Run name"
    unnamed = {name: labels for name, labels in names.items() if any(label.startswith("value_") for label in labels)}
    assert unnamed == {}
