"""What a visitor of a public app can reach, tried through the app's HTTP API (gradio_client).

- A file value is read only if it is an upload Gradio stored for this app, or the bundled sample: a
  FileData naming a server file is refused by every endpoint that takes a file, and the file is never
  opened (an audit hook watches every `open` in this process, where the app runs).
- The server's Hugging Face token is spent only for the owner: an anonymous `/push` with an empty token
  is refused before the Hub is contacted; the owner's app login, or GPT2TUNE_ALLOW_SERVER_TOKEN=1, pass.
- The rejected-rows download neutralises formula cells, and download folders do not pile up.
Only the Hub's upload boundary (`HfApi`) is mocked.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from app_server import app_env, app_url, launch_app_process  # noqa: F401  (app_url is a fixture)
from conftest import SAMPLE_CSV
from gradio_client import Client, handle_file
from gradio_client.client import Endpoint
from gradio_client.exceptions import AppError
from net import free_port
from opened import OPENED, WATCHED

SERVER_TOKEN = "hf_serverOwnerTokenNeverForVisitors0123456"
SECRET = "sk-live-DO-NOT-SHOW-4242"
REFUSED = "was not uploaded to this app: only files uploaded here and the bundled sample are read"
PASTE_YOUR_OWN = "paste your own Hugging Face write token: this app uses its own token only for its owner"
# every endpoint that takes the data file, with the name of its file parameter and what else it needs
FILE_ENDPOINTS = {
    "/preview": ("file", {}),
    "/columns": (None, {}),  # one positional parameter
    "/checks": ("csv", {"question_column": None, "answer_column": None}),
    "/train": ("csv", {"question_column": None, "answer_column": None, "run_name": "visitor-run", "max_steps": 1}),
}


@pytest.fixture
def secret_file(tmp_path):
    """A config with a credential, on the server, outside Gradio's upload folder."""
    path = tmp_path / "server-config" / "creds.json"
    path.parent.mkdir()
    path.write_text(json.dumps([{"question": "api key?", "answer": SECRET}]))
    WATCHED.add(str(path))
    OPENED.clear()
    yield path
    WATCHED.clear()


@pytest.fixture
def hostile(monkeypatch):
    """A client that sends a FileData as it is, instead of uploading the file first as gradio_client
    does (on the same machine that upload would hand the server a copy of the client's own file)."""
    monkeypatch.setattr(Endpoint, "_upload_file", lambda self, f, data_index: dict(f))


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def call(client, endpoint: str, file):
    """Call an endpoint; a refusal is raised as the AppError the page's toast carries. The Train tab
    shows its refusals in the inline alert beside its buttons (its 7th output) and keeps the rest
    of the page, so that alert's text is raised in the same way."""
    name, extra = FILE_ENDPOINTS[endpoint]
    if name is None:
        return client.predict(file, api_name=endpoint)
    result = client.predict(**{name: file}, **extra, api_name=endpoint)
    if endpoint == "/train":
        alert = html.unescape(re.sub(r"<[^>]+>", "", result[6] or "")).strip().removeprefix("⚠️").strip()
        if alert:
            raise AppError(alert)
    return result


def raw_file(path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


@pytest.mark.parametrize("endpoint", FILE_ENDPOINTS)
@pytest.mark.parametrize("target", ["secret", "/etc/passwd"])
def test_a_server_file_is_refused_by_every_endpoint(client, hostile, secret_file, endpoint, target):
    path = secret_file if target == "secret" else Path(target)
    with pytest.raises(AppError) as error:
        call(client, endpoint, raw_file(path))
    message = str(error.value)
    assert SECRET not in message and "root:" not in message
    assert OPENED == []  # refused before anything opened it


@pytest.mark.parametrize("endpoint", FILE_ENDPOINTS)
def test_the_app_refuses_a_server_file_gradio_lets_through(client, hostile, secret_file, endpoint):
    """An app that serves a folder as static files (gr.set_static_paths) makes Gradio hand paths in that
    folder straight to handlers: the app's own check is then what refuses them."""
    from gradio.data_classes import _StaticFiles

    saved = list(_StaticFiles.all_paths)
    _StaticFiles.all_paths = [*saved, secret_file.parent.resolve()]
    try:
        with pytest.raises(AppError) as error:
            call(client, endpoint, raw_file(secret_file))
    finally:
        _StaticFiles.all_paths = saved
    assert str(error.value) == f"'creds.json' {REFUSED}"
    assert OPENED == []


def test_an_uploaded_file_is_read(client, secret_file):
    """The same file uploaded through the API (as gradio_client does) is the visitor's own: it is read."""
    question, answer = client.predict(handle_file(str(secret_file)), api_name="/columns")
    assert (question["value"], answer["value"]) == ("question", "answer")
    _, _, _, table, _, _ = client.predict(file=handle_file(str(secret_file)), api_name="/preview")
    assert table["data"] == [["api key?", SECRET]]


# --- the server's token ------------------------------------------------------------------------------
@pytest.fixture
def trained_run(tiny_model_dir):
    """A run folder holding a model, as training leaves it (the tiny model stands in)."""
    from gpt2tune.runs.store import run_dir

    folder = run_dir("pushable")
    if not folder.exists():
        shutil.copytree(tiny_model_dir, folder)
    return folder.name


@pytest.fixture
def hub_calls(monkeypatch):
    """The Hub upload boundary, recording which token each call carried."""
    from huggingface_hub import HfApi

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, self.token))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, **kwargs):
        calls.append(("upload_folder", repo_id, self.token))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", SERVER_TOKEN)
    for name in ("GPT2TUNE_ALLOW_SERVER_TOKEN", "GPT2TUNE_OWNERS", "GPT2TUNE_LOGIN"):
        monkeypatch.delenv(name, raising=False)
    return calls


def push(client, run, token=""):
    return client.predict(run=run, repo_id="visitor/gpt2", token=token, private=True, api_name="/push")


def test_an_anonymous_visitor_cannot_push_with_the_server_token(client, trained_run, hub_calls):
    with pytest.raises(AppError) as error:
        push(client, trained_run)
    assert str(error.value).startswith(PASTE_YOUR_OWN) and "\n" not in str(error.value)
    assert SERVER_TOKEN not in str(error.value)
    assert hub_calls == []  # nothing reached the Hub


def test_a_visitor_pushes_with_their_own_token(client, trained_run, hub_calls):
    result = push(client, trained_run, token="hf_visitorsOwnToken")
    assert "https://huggingface.co/visitor/gpt2" in result
    assert hub_calls == [("create_repo", "visitor/gpt2", "hf_visitorsOwnToken"),
                         ("upload_folder", "visitor/gpt2", "hf_visitorsOwnToken")]


def test_a_private_app_may_allow_the_server_token(client, trained_run, hub_calls, monkeypatch):
    monkeypatch.setenv("GPT2TUNE_ALLOW_SERVER_TOKEN", "1")
    push(client, trained_run)
    assert hub_calls == [("create_repo", "visitor/gpt2", SERVER_TOKEN), ("upload_folder", "visitor/gpt2", SERVER_TOKEN)]


@pytest.fixture(scope="module")
def owner_app(tiny_model_dir, tmp_path_factory):
    """The app as `python app.py` builds it with GPT2TUNE_LOGIN set: Gradio asks for that login."""
    home = tmp_path_factory.mktemp("owner-home")
    saved = os.environ.get("GPT2TUNE_LOGIN")
    os.environ["GPT2TUNE_LOGIN"] = "owner:correct horse"
    try:
        with app_env(home, str(tiny_model_dir)):
            from gpt2tune.ui import build_app, launch_options

            demo = build_app()
            demo.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, **launch_options())
            try:
                yield demo.local_url, home
            finally:
                demo.close()
    finally:
        if saved is None:
            os.environ.pop("GPT2TUNE_LOGIN", None)
        else:
            os.environ["GPT2TUNE_LOGIN"] = saved


def test_the_owner_logged_in_pushes_with_the_server_token(owner_app, tiny_model_dir, hub_calls, monkeypatch):
    url, home = owner_app
    shutil.copytree(tiny_model_dir, home / "runs" / "owned", dirs_exist_ok=True)
    monkeypatch.setenv("GPT2TUNE_HOME", str(home))
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError, match="credentials were not provided. Please login"):
        Client(url, verbose=False)  # no login, no app (the server answered 401)
    owner = Client(url, auth=("owner", "correct horse"), verbose=False)
    assert "Published as a private model" in push(owner, "owned")
    assert hub_calls == [("create_repo", "visitor/gpt2", SERVER_TOKEN), ("upload_folder", "visitor/gpt2", SERVER_TOKEN)]

    # GPT2TUNE_OWNERS names the owners for every login: this login is no longer one of them
    hub_calls.clear()
    monkeypatch.setenv("GPT2TUNE_OWNERS", "someone-else")
    with pytest.raises(AppError, match=PASTE_YOUR_OWN):
        push(owner, "owned")
    assert hub_calls == []


def test_owner_only_training_refuses_a_visitor(client, monkeypatch):
    from gpt2tune.runs.store import runs_root

    monkeypatch.setenv("GPT2TUNE_OWNER_ONLY_TRAINING", "1")
    with pytest.raises(AppError) as error:
        call(client, "/train", handle_file(str(SAMPLE_CSV)))
    assert str(error.value).startswith("training on this app is reserved for its owner "
                                       "(GPT2TUNE_OWNER_ONLY_TRAINING=1)")
    assert not (runs_root() / "visitor-run").exists()  # no run was started
    # nor may a visitor stop or resume the owner's runs
    _, stop_alert = client.predict(api_name="/stop")
    assert "reserved for its owner" in stop_alert
    resumed = client.predict("visitor-run", None, None, api_name="/resume")
    assert "reserved for its owner" in resumed[6]
    _, _, _, table, _, _ = client.predict(file=handle_file(str(SAMPLE_CSV)), api_name="/preview")
    assert len(table["data"]) == 20  # the rest of the app still answers visitors


def test_owner_only_app_keeps_runs_from_visitors_pushes(client, trained_run, hub_calls, monkeypatch):
    monkeypatch.setenv("GPT2TUNE_OWNER_ONLY_TRAINING", "1")
    with pytest.raises(AppError) as error:
        push(client, trained_run, token="hf_visitorsOwnToken")
    assert str(error.value) == ("publishing runs on this app is reserved for its owner "
                                "(GPT2TUNE_OWNER_ONLY_TRAINING=1): sign in as the owner")
    assert hub_calls == []


@pytest.mark.parametrize("caller, env, owner", [
    (("octocat", "huggingface"), {"SPACE_AUTHOR_NAME": "octocat"}, True),
    (("OctoCat", "huggingface"), {"SPACE_AUTHOR_NAME": "octocat"}, True),
    (("mallory", "huggingface"), {"SPACE_AUTHOR_NAME": "octocat"}, False),
    (("mallory", "huggingface"), {}, False),  # a sign-in proves a name, not ownership
    (("alice", "huggingface"), {"SPACE_AUTHOR_NAME": "acme-org", "GPT2TUNE_OWNERS": "alice, bob"}, True),
    (("anyone", "app login"), {}, True),
    ((None, None), {"SPACE_AUTHOR_NAME": "octocat"}, False),
    (("octocat", None), {"SPACE_AUTHOR_NAME": "octocat"}, False),  # a name with no login proves nothing
])
def test_who_counts_as_the_owner(caller, env, owner, monkeypatch):
    from gpt2tune.hub.access import Caller, is_owner

    for name in ("SPACE_AUTHOR_NAME", "GPT2TUNE_OWNERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_owner(Caller(*caller)) is owner


# --- downloads ---------------------------------------------------------------------------------------
# (a leading CR is read as a line break by the loader, so it reaches the file as "\n": see the unit test below)
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
            "\tleading tab"]


def download_path(output) -> str:
    """The local copy of the download button's file (its output is an update wrapping the file)."""
    return output["value"] if isinstance(output, dict) else output


def test_rejected_rows_download_neutralises_formulas(client, tmp_path):
    path = tmp_path / "formulas.csv"
    rows = [["question", "answer", "=note"], ["ok?", "fine", "x"]]
    rows += [[formula, "", "y"] for formula in FORMULAS]  # empty answers: all rejected
    rows += [["ok?", "fine", FORMULAS[0]]]  # duplicate of row 2: rejected with its note
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)

    *_, rejected, download = client.predict(file=handle_file(str(path)), api_name="/preview")
    assert len(rejected["data"]) == len(FORMULAS) + 1
    with open(download_path(download), newline="", encoding="utf-8-sig") as handle:
        written = list(csv.reader(handle))
    assert written[0] == ["row", "reason", "question", "answer", "'=note"]
    questions = [row[2] for row in written[1:]]
    notes = [row[4] for row in written[1:]]
    assert questions == ["'" + formula for formula in FORMULAS] + ["ok?"]
    assert notes[-1] == "'" + FORMULAS[0] and notes[0] == "y"
    assert [row[1] for row in written[1:]] == ["empty answer"] * len(FORMULAS) + ["duplicate of row 2"]


@pytest.mark.slow
def test_download_folders_do_not_pile_up(client, tmp_path):
    from gpt2tune.paths import work_dir
    from gpt2tune.ui.data_tab import KEEP_DOWNLOADS

    path = tmp_path / "some-rejected.csv"
    path.write_text("question,answer\nq,a\nq2,\n")
    downloads = []
    for _ in range(KEEP_DOWNLOADS + 4):
        *_, download = client.predict(file=handle_file(str(path)), api_name="/preview")
        downloads.append(download_path(download))
    folders = [p for p in (work_dir() / "downloads").iterdir() if p.is_dir()]
    assert len(folders) == KEEP_DOWNLOADS
    # every preview's download was served, including those whose folder has since been pruned
    assert all(Path(d).read_text(encoding="utf-8-sig").splitlines()[1] == "3,empty answer,q2," for d in downloads)


@pytest.mark.parametrize("cell, written", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("a=b", "a=b"), ("", ""), (3, 3), (-2.5, -2.5), (None, None),
])
def test_spreadsheet_safe(cell, written):
    from gpt2tune.data.load import spreadsheet_safe

    assert spreadsheet_safe(cell) == written


# --- Hub ids -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_visitor_loads_only_public_models_with_the_server_token(tiny_model_dir, tmp_path):
    """The app in a subprocess (HF_ENDPOINT is read at import) with HF_TOKEN set, against a local Hub that
    serves one public repo. A repo the Hub does not show to an anonymous request (what it answers for a
    private one) is refused for a visitor before anything downloads; the public one loads."""
    from hub_server import hub_env, serve_hub_repo

    cache = tmp_path / "hf-cache"
    with serve_hub_repo(tiny_model_dir, "tester/tiny-gpt2", workdir=tmp_path / "hub") as endpoint:
        env = {**os.environ, **hub_env(endpoint, cache), "HF_TOKEN": SERVER_TOKEN,
               "GPT2TUNE_HOME": str(tmp_path / "home"), "GPT2TUNE_BASE_MODEL": str(tiny_model_dir)}
        for name in ("GPT2TUNE_ALLOW_SERVER_TOKEN", "GPT2TUNE_OWNERS", "GPT2TUNE_LOGIN"):
            env.pop(name, None)
        with launch_app_process(env, tmp_path / "app.log") as (url, _):
            visitor = Client(url, verbose=False)
            refused = "'tester/owners-private' is not a public model on the Hugging Face Hub: this app downloads " \
                      "private or gated models only for its owner"
            with pytest.raises(AppError) as error:
                visitor.predict("tester/owners-private", False, api_name="/load")
            assert str(error.value) == f"repository {refused}"
            with pytest.raises(AppError) as error:
                visitor.predict(question="Hi?", source="Folder or Hub id", run=None, model_id="tester/owners-private",
                                compare=False, max_new_tokens=2, seed=None, api_name="/generate")
            assert str(error.value) == f"model {refused}"
            with pytest.raises(AppError) as error:
                visitor.predict(question_column=None, answer_column=None, base_model="tester/owners-private",
                                api_name="/checks")
            assert str(error.value) == f"base model {refused}"
            assert not list(cache.rglob("*owners-private*"))  # nothing was downloaded

            message, _, _ = visitor.predict("tester/tiny-gpt2", False, api_name="/load")
            assert message.startswith("✅ Loaded `tester/tiny-gpt2`")


@pytest.mark.parametrize("on_space, session, username, expected", [
    (True, {"oauth_info": {"userinfo": {"preferred_username": "octocat"}, "expires_at": 4e9}}, None,
     ("octocat", "huggingface")),
    (True, {"oauth_info": {"userinfo": {"preferred_username": "octocat"}, "expires_at": 1}}, None, (None, None)),
    # off a Space Gradio signs everyone in as the server's own account: never a sign-in
    (False, {"oauth_info": {"userinfo": {"preferred_username": "octocat"}, "expires_at": 4e9}}, None, (None, None)),
    (True, {}, None, (None, None)),
    (False, {}, "owner", ("owner", "app login")),
])
def test_who_is_calling(on_space, session, username, expected, monkeypatch):
    """How a handler learns its caller from Gradio's request: the app login's name, or the Hugging Face
    sign-in Gradio keeps in the session (as its OAuth routes store it on a Space)."""
    import gradio as gr
    from starlette.requests import Request

    from gpt2tune.ui.common import current_caller

    for name, value in {"SYSTEM": "spaces", "SPACE_ID": "octocat/gpt2tune", "OAUTH_CLIENT_ID": "client-id"}.items():
        if on_space:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    request = gr.Request(Request({"type": "http", "headers": [], "session": session}), username=username)
    caller = current_caller(request)
    assert (caller.username, caller.via) == expected


# --- a Space with "Sign in with Hugging Face" ------------------------------------------------------------
# The app as a Space runs it, with the Hub upload recorded instead of sent (the only mock).
SPACE_APP = """
import json, os, runpy
from huggingface_hub import HfApi

def record(name):
    def call(self, repo_id, **kwargs):
        with open(os.environ["UPLOAD_RECORD"], "a") as f:
            f.write(json.dumps([name, repo_id, self.token == os.environ["HF_TOKEN"]]) + "\\n")
        return "https://huggingface.co/" + repo_id
    return call

HfApi.create_repo, HfApi.upload_folder = record("create_repo"), record("upload_folder")
runpy.run_path("app.py", run_name="__main__")
"""


def signed_in_cookie(secret: str, username: str) -> str:
    """The session cookie Gradio's OAuth callback sets after a Hugging Face sign-in (Starlette's
    SessionMiddleware format, signed with the key Gradio derives from the Space's OAuth secret)."""
    import base64
    import hashlib
    import time

    from itsdangerous import TimestampSigner

    session = {"oauth_info": {
        "access_token": "hf_oauth_user_token", "scope": "openid profile", "expires_at": int(time.time()) + 3600,
        "userinfo": {"preferred_username": username, "name": username, "profile": f"https://huggingface.co/{username}",
                     "picture": ""}}}
    key = hashlib.sha256((secret + "-v4").encode()).hexdigest()
    signed = TimestampSigner(key).sign(base64.b64encode(json.dumps(session).encode()))
    return f"session={signed.decode()}"


@pytest.mark.slow
def test_on_a_space_the_signed_in_author_pushes_with_the_secret(tiny_model_dir, tmp_path):
    pytest.importorskip("authlib", reason="Sign in with Hugging Face needs authlib (gradio[oauth])")
    home, record, secret = tmp_path / "home", tmp_path / "uploads.jsonl", "oauth-client-secret"
    shutil.copytree(tiny_model_dir, home / "runs" / "owned")
    env = {**os.environ, "GPT2TUNE_HOME": str(home), "GPT2TUNE_BASE_MODEL": str(tiny_model_dir),
           "HF_TOKEN": SERVER_TOKEN, "UPLOAD_RECORD": str(record), "HF_HUB_OFFLINE": "1",
           # what a Space with `hf_oauth: true` sets
           "SYSTEM": "spaces", "SPACE_ID": "octocat/gpt2tune", "SPACE_AUTHOR_NAME": "octocat",
           "OAUTH_CLIENT_ID": "client-id", "OAUTH_CLIENT_SECRET": secret, "OAUTH_SCOPES": "openid profile",
           "OPENID_PROVIDER_URL": "https://huggingface.co",
           # visitors may publish (with their own token) only where the owner opened the Space to them
           "GPT2TUNE_OPEN_TRAINING": "1"}
    for name in ("GPT2TUNE_ALLOW_SERVER_TOKEN", "GPT2TUNE_OWNERS", "GPT2TUNE_LOGIN", "GPT2TUNE_OWNER_ONLY_TRAINING"):
        env.pop(name, None)
    with launch_app_process(env, tmp_path / "app.log", argv=["-c", SPACE_APP]) as (url, _):
        anonymous = Client(url, verbose=False)
        visitor = Client(url, headers={"Cookie": signed_in_cookie(secret, "mallory")}, verbose=False)
        author = Client(url, headers={"Cookie": signed_in_cookie(secret, "octocat")}, verbose=False)
        for client in (anonymous, visitor):
            with pytest.raises(AppError, match=PASTE_YOUR_OWN):
                push(client, "owned")
        assert not record.exists()  # nothing reached the Hub
        assert "Published as a private model" in push(author, "owned")
    assert [json.loads(line) for line in record.read_text().splitlines()] == [
        ["create_repo", "visitor/gpt2", True], ["upload_folder", "visitor/gpt2", True]]  # with the server's token
