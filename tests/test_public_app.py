"""A hostile visitor of a public app, from outside: every refusal through gradio_client or raw HTTP,
its one line reaching the caller, and proof that nothing was read, fetched with the owner's token,
written or changed.

- The Hub-dataset box never reads a server folder (the working folder, its runs, a run folder).
- A visitor's Hub dataset is fetched with no token at all (a stand-in Hub records every header).
- On a Space, training, stopping and publishing are the owner's unless GPT2TUNE_OPEN_TRAINING=1.
- Where training is open, a visitor's run is bounded (epochs=1e9 trains the owner's step limit) and
  only the browser that started it may stop or resume it; failed starts leave nothing on disk.
- Failed pushes change nothing; wide files are refused; errors show no server path.
Only the Hub's upload boundary (`HfApi`) is mocked.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from app_server import ROOT, app_url, launch_app_process  # noqa: F401  (app_url is a fixture)
from conftest import SAMPLE_CSV
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from opened import OPENED, WATCHED

SERVER_TOKEN = "hf_serverOwnerTokenNeverForVisitors0123456"
SECRET = "sk-live-VICTIMS-TRAINING-DATA-7777"
NOT_AN_ID = "is not a Hub dataset id; write it as user/name"
KEY_A, KEY_B = "browser-a-key-0123456789abcdef", "browser-b-key-0123456789abcdef"


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture
def visitor_env(monkeypatch):
    """No owner, no policy variables: what each test sets is all there is."""
    for name in ("SPACE_ID", "GPT2TUNE_PUBLIC", "GPT2TUNE_OPEN_TRAINING", "GPT2TUNE_OWNER_ONLY_TRAINING",
                 "GPT2TUNE_ALLOW_SERVER_TOKEN", "GPT2TUNE_OWNERS", "GPT2TUNE_LOGIN", "GPT2TUNE_VISITOR_MAX_STEPS",
                 "GPT2TUNE_VISITOR_MAX_MINUTES", "GPT2TUNE_VISITOR_DISK_MB"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def open_space(visitor_env):
    visitor_env.setenv("SPACE_ID", "octocat/gpt2tune")
    visitor_env.setenv("GPT2TUNE_OPEN_TRAINING", "1")
    return visitor_env


def alert_of(result) -> str:
    """The Train tab's refusals are its inline alert (7th output) beside the buttons."""
    return html.unescape(re.sub(r"<[^>]+>", "", result[6] or "")).strip().removeprefix("⚠️").strip()


def train(client, **values):
    values = {"question_column": None, "answer_column": None, "max_steps": 1, **values}
    return alert_of(client.predict(**values, api_name="/train"))


def runs():
    from gpt2tune.runs.store import runs_root

    return sorted(p.name for p in runs_root().iterdir() if not p.name.startswith("."))  # .prep-cache: shared


# --- the Hub-dataset box and server folders --------------------------------------------------------
@pytest.fixture
def server_folders(tmp_path, visitor_env):
    """The app as `python app.py` runs it: in a folder that holds `gpt2tune_work`, where another
    visitor's run keeps the data it trained on."""
    root = tmp_path / "app"
    data = root / "gpt2tune_work" / "runs" / "victim" / "data" / "train.csv"
    data.parent.mkdir(parents=True)
    data.write_text(f"question,answer\nwhat is the key?,{SECRET}\n")
    visitor_env.delenv("GPT2TUNE_HOME")
    visitor_env.chdir(root)
    WATCHED.add(str(data))
    OPENED.clear()
    yield data
    WATCHED.clear()


def test_load_dataset_does_read_server_folders(server_folders, tmp_path):
    """Why the gate refuses them: `datasets.load_dataset` reads these names from disk."""
    import datasets

    rows = datasets.load_dataset("gpt2tune_work/runs", split="train", cache_dir=str(tmp_path / "cache"))
    assert SECRET in rows["answer"]


@pytest.mark.parametrize("dataset", ["gpt2tune_work", "gpt2tune_work/runs", "gpt2tune_work/runs/victim"])
def test_the_dataset_box_never_reads_a_server_folder(client, server_folders, dataset):
    before = runs()
    with pytest.raises(AppError) as error:
        client.predict(dataset=dataset, api_name="/preview")
    assert str(error.value) == f"dataset {dataset!r} {NOT_AN_ID}"
    with pytest.raises(AppError) as error:
        client.predict(dataset=dataset, question_column=None, answer_column=None, api_name="/checks")
    assert str(error.value) == f"dataset {dataset!r} {NOT_AN_ID}"
    assert train(client, dataset=dataset, run_name="reads-victim") == f"dataset {dataset!r} {NOT_AN_ID}"
    assert OPENED == []  # the victim's data was never opened
    assert runs() == before  # nothing written


def test_a_refusal_reaches_a_raw_http_caller_as_its_line(app_url, server_folders):
    """Not `{"error": null}`: the caller reads why, for Gradio's own refusals too."""
    from gradio_client import Client

    parameters = Client(app_url, verbose=False).view_api(
        return_format="dict", print_info=False)["named_endpoints"]["/preview"]["parameters"]
    given = {"file": None, "dataset": "gpt2tune_work/runs"}
    calls = {
        "preview": [given.get(p["parameter_name"], p.get("parameter_default")) for p in parameters],
        "columns": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}],
    }
    lines = {}
    with httpx.Client(base_url=app_url, trust_env=False, timeout=60) as http:
        for endpoint, data in calls.items():
            event = http.post(f"gradio_api/call/{endpoint}", json={"data": data}).json()["event_id"]
            stream = http.get(f"gradio_api/call/{endpoint}/{event}").text
            assert stream.startswith("event: error\ndata: "), stream
            lines[endpoint] = json.loads(stream.split("data: ", 1)[1])["error"]
    assert lines == {"preview": f"dataset 'gpt2tune_work/runs' {NOT_AN_ID}",
                     "columns": "Cannot move /etc/passwd to the gradio cache dir because it was not uploaded by a user."}
    assert OPENED == []


# --- the owner's token and a visitor's Hub dataset ---------------------------------------------------
def _dataset_repo(folder: Path) -> Path:
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.csv").write_text("prompt,solution\nWhat is 2+2?,4\nCapital of France?,Paris\n"
                                               "Colour of the sky?,Blue\n")
    return folder


@pytest.mark.slow
def test_a_visitors_hub_dataset_is_fetched_without_the_owners_token(tiny_model_dir, tmp_path):
    """The app in a subprocess (HF_ENDPOINT is read at import) with the owner's HF_TOKEN set, against a
    stand-in Hub that records every request's Authorization header and serves one public dataset."""
    from hub_server import hub_env, recording_hub, serve_hub_repo

    cache, home = tmp_path / "hf-cache", tmp_path / "home"
    with serve_hub_repo(_dataset_repo(tmp_path / "repo"), "tester/public-qa", workdir=tmp_path / "olah",
                        repo_type="datasets") as olah, recording_hub(olah) as (endpoint, requests):
        env = {**os.environ, **hub_env(endpoint, cache), "HF_TOKEN": SERVER_TOKEN, "PYTHONPATH": str(ROOT),
               "HF_HUB_DISABLE_IMPLICIT_TOKEN": "0",  # as on a real server: the token goes wherever it may
               "GPT2TUNE_HOME": str(home), "GPT2TUNE_BASE_MODEL": str(tiny_model_dir)}
        for name in ("GPT2TUNE_ALLOW_SERVER_TOKEN", "GPT2TUNE_OWNERS", "GPT2TUNE_LOGIN"):
            env.pop(name, None)

        # The stand-in sees the token when the owner's CLI names the same private dataset
        owner = subprocess.run([sys.executable, "-m", "gpt2tune", "check", "--dataset", "tester/owners-private"],
                               env=env, capture_output=True, text=True, timeout=300)
        assert owner.returncode == 2 and f"Bearer {SERVER_TOKEN}" in {r["authorization"] for r in requests}
        requests.clear()

        with launch_app_process(env, tmp_path / "app.log") as (url, _):
            visitor = Client(url, verbose=False)
            with pytest.raises(AppError) as error:
                visitor.predict(dataset="tester/owners-private", api_name="/preview")
            assert str(error.value).startswith("could not load dataset 'tester/owners-private': ")
            assert "\n" not in str(error.value)
            asked_private = [r for r in requests if "owners-private" in r["path"]]
            _, summary, _, table, _, _ = visitor.predict(dataset="tester/public-qa", api_name="/preview")
    assert asked_private  # the visitor's request did reach the Hub...
    assert {r["authorization"] for r in requests} == {None}  # ...and no request carried any token
    assert "**tester/public-qa, split train**" in summary
    assert table["data"] == [["What is 2+2?", "4"], ["Capital of France?", "Paris"], ["Colour of the sky?", "Blue"]]
    # the visitor's dataset was downloaded inside the working folder and removed once read; nothing elsewhere
    assert (home / "hub-datasets").is_dir() and not [p for p in (home / "hub-datasets").rglob("*") if p.is_file()]
    assert not [p for p in cache.rglob("*") if "public-qa" in p.name or p.suffix == ".arrow"]


# --- a Space: the owner's by default -----------------------------------------------------------------
@pytest.fixture
def hub_calls(monkeypatch):
    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(repo_id) or repo_id)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, repo_id, **kw: calls.append(repo_id))
    return calls


@pytest.fixture
def trained(tiny_model_dir):
    """A run holding a model, as training leaves it (the tiny model stands in)."""
    from gpt2tune.runs.store import run_dir

    folder = run_dir("published")
    if not folder.exists():
        shutil.copytree(tiny_model_dir, folder)
    return folder


def test_on_a_space_a_visitor_cannot_train_stop_resume_or_publish(client, trained, hub_calls, visitor_env):
    visitor_env.setenv("SPACE_ID", "octocat/gpt2tune")
    reserved = "on this app is reserved for its owner (a public app, unless its owner sets GPT2TUNE_OPEN_TRAINING=1)"
    before = {path: path.stat().st_mtime_ns for path in trained.rglob("*")}
    runs_before = runs()
    assert train(client, run_name="visitor-run", visitor_key=KEY_A).startswith(f"training {reserved}")
    _, stop_alert = client.predict(KEY_A, api_name="/stop")
    assert f"stopping runs {reserved}" in stop_alert
    assert alert_of(client.predict("published", None, None, KEY_A, api_name="/resume")).startswith(
        f"resuming runs {reserved}")
    with pytest.raises(AppError) as error:
        client.predict(run="published", repo_id="visitor/gpt2", token="hf_visitorsOwnToken", api_name="/push")
    assert str(error.value) == f"publishing runs {reserved}: sign in as the owner"
    assert hub_calls == [] and runs() == runs_before
    assert {path: path.stat().st_mtime_ns for path in trained.rglob("*")} == before
    # answering with the published runs stays open: the app answers as the run's model does
    from gpt2tune.config import GenerationSettings
    from gpt2tune.generate import ModelCache, answer

    answered, _ = client.predict(question="Hi?", run="published", max_new_tokens=4, seed=None, api_name="/generate")
    assert answered == answer(*ModelCache().get(str(trained)), "Hi?", GenerationSettings(max_new_tokens=4))
    visitor_env.setenv("GPT2TUNE_OPEN_TRAINING", "1")  # the owner opens it: visitors publish with their token
    client.predict(run="published", repo_id="visitor/gpt2", token="hf_visitorsOwnToken", api_name="/push")
    assert hub_calls == ["visitor/gpt2", "visitor/gpt2"]


# --- an open Space: bounded runs, each the visitor's own ------------------------------------------------
def test_a_visitor_needs_the_key_its_browser_keeps(client, open_space):
    before = runs()
    assert train(client, run_name="keyless").startswith("no visitor key: this app keeps one in the browser")
    assert runs() == before


def test_no_visitor_run_while_the_runs_fill_their_disk_bound(client, trained, open_space):
    open_space.setenv("GPT2TUNE_VISITOR_DISK_MB", "1")  # the tiny model's run already takes more
    before = runs()
    assert train(client, run_name="one-too-many", visitor_key=KEY_A).startswith(
        "this app's working folder uses ")
    assert runs() == before


def test_a_failed_run_cannot_be_taken_over_by_name(client, visitor_env):
    from gpt2tune.runs.store import run_dir

    folder = run_dir("failed-run")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "theirs.csv").write_text("question,answer\nq,a\n")
    (folder / "run.json").write_text(json.dumps({"state": "failed", "step": 0, "message": "boom"}))
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert train(client, run_name="failed-run", csv=handle_file(str(SAMPLE_CSV))) == (
        "run 'failed-run' already exists: choose another run name, or pick it in the run list and press Resume")
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_a_visitor_resumes_only_its_own_runs(client, open_space):
    from gpt2tune.runs.store import run_dir
    from gpt2tune.visitor import record_starter

    record_starter(run_dir("a-run-of-a"), KEY_A)
    refused = "you may resume only runs started from this browser: run 'a-run-of-a' was started by someone else"
    assert alert_of(client.predict("a-run-of-a", None, None, KEY_B, api_name="/resume")) == refused
    assert alert_of(client.predict("a-run-of-a", None, None, None, api_name="/resume")) == refused
    # its own browser gets past the gate (to the run's own state: nothing was trained yet)
    assert alert_of(client.predict("a-run-of-a", None, None, KEY_A, api_name="/resume")).startswith(
        "nothing to resume in 'a-run-of-a'")


def wait_for(condition, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_epochs_1e9_trains_the_owners_step_limit_and_only_its_browser_stops_it(client, open_space):
    from gpt2tune.runs import record
    from gpt2tune.runs.store import run_dir
    from gpt2tune.training.runner import default_runner

    open_space.setenv("GPT2TUNE_VISITOR_MAX_STEPS", "100000")  # more than this test waits for
    folder = run_dir("endless")
    job = client.submit(question_column=None, answer_column=None, epochs=1e9, max_steps=0, batch_size=2,
                        eval_steps=0, save_steps=0, eval_answer_samples=0, run_name="endless",
                        visitor_key=KEY_A, api_name="/train")
    wait_for(lambda: (record.read_record(folder) or {}).get("step", 0) >= 2)
    saved = record.read_record(folder)
    assert saved["max_steps"] == 100000  # not the 2,000,000,000 steps a billion epochs would be
    assert (saved["config"]["step_limit"], saved["config"]["max_minutes"], saved["config"]["save_total_limit"]) == (
        100000, 15.0, 1)
    for key in (KEY_B, None):
        _, alert = client.predict(key, api_name="/stop")
        assert "you may stop only runs started from this browser: run &#x27;endless&#x27;" in alert
    assert default_runner().active_run() == folder  # still training
    _, alert = client.predict(KEY_A, api_name="/stop")
    assert alert == ""
    job.result(timeout=180)
    wait_for(lambda: default_runner().active_run() is None)
    assert record.read_record(folder)["state"] == record.STOPPED


def test_a_visitors_run_that_fails_before_training_leaves_no_folder(client, open_space):
    before = runs()
    result = client.predict(question_column="no-such-column", answer_column=None, max_steps=1, run_name="doomed",
                            visitor_key=KEY_A, api_name="/train")
    assert "no-such-column" in html.unescape(result[0])  # the page still says why
    assert runs() == before  # its data copy and record are gone


# --- pushes, wide files, messages ----------------------------------------------------------------------
def test_a_failed_push_changes_nothing_on_disk(client, trained, visitor_env, monkeypatch):
    import httpx as _httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from gpt2tune.hub.card import CARD_FILE, write_model_card

    def rejected(self, repo_id, **kwargs):
        response = _httpx.Response(401, request=_httpx.Request("POST", "https://huggingface.co/api/repos/create"))
        raise HfHubHTTPError("401 Client Error", response=response)

    monkeypatch.setattr(HfApi, "create_repo", rejected)
    (trained / CARD_FILE).unlink(missing_ok=True)
    for had_card in (False, True):
        if had_card:
            write_model_card(trained)
        before = {p.relative_to(trained): p.read_bytes() for p in trained.rglob("*") if p.is_file()}
        with pytest.raises(AppError) as error:
            client.predict(run="published", repo_id="attacker/gpt2", token="hf_anyToken", api_name="/push")
        assert str(error.value).startswith("push to attacker/gpt2 failed: the Hub rejected the token (401)")
        assert {p.relative_to(trained): p.read_bytes() for p in trained.rglob("*") if p.is_file()} == before


def test_a_wide_file_is_refused_in_one_line(client, tmp_path):
    path = tmp_path / "wide.csv"
    columns = [f"c{i}" for i in range(5000)]
    path.write_text(",".join(columns) + "\n" + ",".join("x" for _ in columns) + "\n")
    for endpoint in ("/columns", "/preview"):
        with pytest.raises(AppError) as error:
            client.predict(handle_file(str(path)), api_name=endpoint)
        assert str(error.value) == ("wide.csv: 5,000 columns, over the limit of 1,000: keep the question and answer "
                                    "columns (and a few others) and save it again")


def test_errors_show_no_server_path(client, visitor_env):
    from gpt2tune.paths import work_dir

    refusals = []
    for kwargs, api_name in [
        (dict(question="Hi?", source="Folder or Hub id", model_id="/etc", seed=None), "/generate"),
        (dict(question="Hi?", source="Folder or Hub id", model_id="no/such/folder", seed=None), "/generate"),
        (dict(repo_id="../../etc"), "/load"),
        (dict(question_column=None, answer_column=None, base_model="missing/model/folder"), "/checks"),
    ]:
        with pytest.raises(AppError) as error:
            client.predict(**kwargs, api_name=api_name)
        refusals.append(str(error.value))
    assert refusals == [
        "model folder '/etc' is outside the working folder: use a folder inside it",
        "model folder 'no/such/folder' does not exist in the working folder",
        "repository folder '../../etc' is outside the working folder: use a folder inside it",
        "base model folder 'missing/model/folder' does not exist in the working folder",
    ]
    assert not any(str(work_dir()) in line for line in refusals)
