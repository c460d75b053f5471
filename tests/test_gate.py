"""The gate (`gpt2tune.visitor`): one table of hostile values per kind of input a caller of the app
sends, against the functions every handler calls. Pure and fast: no app, no network.

The same values through a running app (gradio_client and raw HTTP) are in test_public_app.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gpt2tune.hub.access import APP_LOGIN, Caller

ANONYMOUS = Caller()
OWNER = Caller("owner", APP_LOGIN)  # whoever passed the app's own login
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.-]+/)+")
POLICY_ENV = ("SPACE_ID", "GPT2TUNE_PUBLIC", "GPT2TUNE_OPEN_TRAINING", "GPT2TUNE_OWNER_ONLY_TRAINING",
              "GPT2TUNE_ALLOW_SERVER_TOKEN", "GPT2TUNE_OWNERS", "GPT2TUNE_VISITOR_MAX_STEPS",
              "GPT2TUNE_VISITOR_MAX_MINUTES", "GPT2TUNE_VISITOR_DISK_MB")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A working folder of this test, the process in the folder above it (as `python app.py` runs in
    the folder that holds `gpt2tune_work`), and no policy variables from the environment."""
    root = tmp_path / "app"
    work = root / "gpt2tune_work"
    (work / "runs" / "victim" / "data").mkdir(parents=True)
    (work / "runs" / "victim" / "data" / "train.csv").write_text("question,answer\nsecret?,hunter2\n")
    monkeypatch.setenv("GPT2TUNE_HOME", str(work))
    monkeypatch.chdir(root)
    for name in POLICY_ENV:
        monkeypatch.delenv(name, raising=False)
    return work


# --- files ---------------------------------------------------------------------------------------------
@pytest.fixture
def uploads(tmp_path):
    folder = tmp_path / "gradio-uploads"
    (folder / "abc123").mkdir(parents=True)
    (folder / "abc123" / "mine.csv").write_text("question,answer\nq,a\n")
    outside = tmp_path / "server" / "creds.json"
    outside.parent.mkdir()
    outside.write_text("[]")
    (folder / "abc123" / "link.csv").symlink_to(outside)
    return folder


@pytest.mark.parametrize("file, message", [
    (None, "no data file: upload a CSV"),
    ("", "no data file: upload a CSV"),
    ({"path": None}, "the data file is not a file"),
    ({"path": "   "}, "the data file is not a file"),
    (123, "the data file is not a file"),
    ("/etc/passwd", "'passwd' was not uploaded to this app"),
    ({"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "'passwd' was not uploaded to this app"),
    ("UPLOADS/abc123/../../server/creds.json", "'creds.json' was not uploaded to this app"),
    ("UPLOADS/abc123/link.csv", "'link.csv' was not uploaded to this app"),  # a symlink that leads out
    ("UPLOADS-evil/x.csv", "'x.csv' was not uploaded to this app"),  # a sibling sharing the prefix
])
def test_data_file_refuses(file, message, uploads):
    from gpt2tune.visitor import data_file

    if isinstance(file, str):
        file = file.replace("UPLOADS", str(uploads))
    with pytest.raises(ValueError) as error:
        data_file(file, uploads)
    assert str(error.value).startswith(message)
    assert not ABSOLUTE_PATH.search(str(error.value))


def test_data_file_reads_an_upload_and_the_sample(uploads):
    from gpt2tune.paths import SAMPLE_CSV
    from gpt2tune.visitor import data_file

    mine = str(uploads / "abc123" / "mine.csv")
    assert data_file({"path": mine}, uploads) == mine
    assert data_file(str(SAMPLE_CSV), uploads) == str(SAMPLE_CSV)


# --- Hub dataset ids -----------------------------------------------------------------------------------
NOT_AN_ID = "is not a Hub dataset id; write it as user/name"


@pytest.mark.parametrize("dataset", [
    "gpt2tune_work",  # the working folder: every visitor's uploads (runs/<name>/data)
    "gpt2tune_work/runs",
    "gpt2tune_work/runs/victim",  # a run folder
    "runs",  # a folder of the working folder
    "./gpt2tune_work", "../app", "/etc", "/etc/passwd", "~", "~/.cache", "a/b/c", "user\\name", "user/../x",
    "user/name/", "/user/name", "user//name", "user/na me", "us\ner/name", ".hidden", "a..b", "user/--x",
    "csv", "JSON", "parquet", "text", "arrow",  # load_dataset's packaged builders read local files
    "x" * 97, "hf://datasets/user/name", "https://evil.example/data.csv", "user/name@main",
])
def test_hub_dataset_refuses(dataset, home):
    from gpt2tune.visitor import hub_dataset

    for caller in (ANONYMOUS, OWNER):  # a path is a path, whoever names it
        with pytest.raises(ValueError) as error:
            hub_dataset(dataset, caller=caller)
        assert str(error.value).endswith(NOT_AN_ID)  # the caller's own text, cut short: no server path


def test_a_name_that_exists_on_disk_is_refused_as_a_dataset_id(home):
    """A legitimate-looking id is still refused when load_dataset would find it on disk instead."""
    from gpt2tune.visitor import hub_dataset

    assert hub_dataset("squad", caller=ANONYMOUS).id == "squad"
    (home.parent / "squad").mkdir()
    with pytest.raises(ValueError, match=NOT_AN_ID):
        hub_dataset("squad", caller=ANONYMOUS)
    (home.parent / "user").mkdir()
    (home.parent / "user" / "name.csv").write_text("q,a\n")
    assert hub_dataset("user/name", caller=ANONYMOUS).id == "user/name"  # user/name itself is not on disk


@pytest.mark.parametrize("field, value", [
    ("config", "../x"), ("config", "a/b"), ("split", "/etc"), ("split", "train split"), ("revision", ".."),
    ("revision", "refs/../x"), ("revision", "/etc"), ("revision", "x" * 101),
])
def test_hub_dataset_refuses_bad_config_split_revision(field, value, home):
    from gpt2tune.visitor import hub_dataset

    with pytest.raises(ValueError, match=f"^dataset {field} .* is not valid"):
        hub_dataset("user/name", **{field: value}, caller=ANONYMOUS)


def test_anyone_but_the_owner_reads_hub_datasets_without_the_token_into_the_working_folder(home, monkeypatch):
    from gpt2tune.visitor import HUB_DATASETS_DIR, hub_dataset

    visitor = hub_dataset(" user/name ", "main", "train[:10]", "refs/pr/1", caller=ANONYMOUS)
    assert (visitor.id, visitor.config, visitor.split, visitor.revision) == ("user/name", "main", "train[:10]",
                                                                            "refs/pr/1")
    assert visitor.token is False and Path(visitor.cache_dir) == home / HUB_DATASETS_DIR
    assert hub_dataset("user/name", caller=Caller("mallory", "huggingface")).token is False  # signed in, not owner
    owner = hub_dataset("user/name", caller=OWNER)
    assert owner.token is True and owner.cache_dir is None
    monkeypatch.setenv("GPT2TUNE_ALLOW_SERVER_TOKEN", "1")  # a private app shares the token with everyone
    assert hub_dataset("user/name", caller=ANONYMOUS).token is True
    assert hub_dataset("  ", caller=ANONYMOUS) is None and hub_dataset(None, caller=ANONYMOUS) is None


# --- model ids -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("", "the model is empty"),
    ("/etc", "model folder '/etc' is outside the working folder"),
    ("../..", "model folder '../..' is outside the working folder"),
    ("~", "model folder '~' is outside the working folder"),
    ("runs/../../..", "model folder 'runs/../../..' is outside the working folder"),
    ("a/b/c", "model folder 'a/b/c' does not exist in the working folder"),
    ("user/na me", "model 'user/na me' is neither a Hub id"),
    ("user/name.git", "model 'user/name.git' is neither a Hub id"),
])
def test_model_reference_refuses(text, message, home):
    from gpt2tune.visitor import model_reference

    with pytest.raises(ValueError) as error:
        model_reference(text, caller=ANONYMOUS)
    assert str(error.value).startswith(message)
    assert str(home) not in str(error.value) and not ABSOLUTE_PATH.search(str(error.value))


def test_model_reference_keeps_ids_and_folders_inside(home):
    from gpt2tune.visitor import model_reference

    (home / "models" / "mine").mkdir(parents=True)
    assert model_reference("user/name", caller=ANONYMOUS) == "user/name"  # no server token: nothing to guard
    assert model_reference("models/mine", caller=ANONYMOUS) == str(home / "models" / "mine")
    assert model_reference("/srv/base", caller=ANONYMOUS, default="/srv/base") == "/srv/base"  # the owner's default


# --- run names -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "   ", "..", "../x", "a/b", "/etc", ".hidden", "-x", "a b", "a\nb", "x" * 65,
                                  "run;rm", "ünïcode", "a\\b", None])
def test_run_name_refuses(name):
    from gpt2tune.visitor import run_name

    with pytest.raises(ValueError, match="is not valid: use 1-64 letters, digits"):
        run_name(name)


# --- who may train, stop and publish --------------------------------------------------------------------
@pytest.mark.parametrize("env, anonymous_may_train", [
    ({}, True),  # a local app: as before
    ({"SPACE_ID": "octocat/gpt2tune"}, False),  # a Space: the owner's by default
    ({"GPT2TUNE_PUBLIC": "1"}, False),
    ({"SPACE_ID": "octocat/gpt2tune", "GPT2TUNE_OPEN_TRAINING": "1"}, True),
    ({"SPACE_ID": "octocat/gpt2tune", "GPT2TUNE_OPEN_TRAINING": "1", "GPT2TUNE_OWNER_ONLY_TRAINING": "1"}, False),
    ({"GPT2TUNE_OWNER_ONLY_TRAINING": "1"}, False),
])
def test_space_defaults(env, anonymous_may_train, home, monkeypatch):
    from gpt2tune.hub.access import GENERATE_INSTEAD, check_owner_only

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for action in ("training", "publishing runs", "showing training examples"):
        check_owner_only(OWNER, action)  # the owner always may
        if anonymous_may_train:
            check_owner_only(ANONYMOUS, action)
        else:
            with pytest.raises(ValueError, match=f"^{action} on this app is reserved for its owner"):
                check_owner_only(ANONYMOUS, action)
    if env == {"SPACE_ID": "octocat/gpt2tune"}:
        with pytest.raises(ValueError) as error:
            check_owner_only(ANONYMOUS, "stopping runs", GENERATE_INSTEAD)
        assert str(error.value) == ("stopping runs on this app is reserved for its owner (a public app, unless its "
                                    "owner sets GPT2TUNE_OPEN_TRAINING=1): sign in as the owner, or answer questions "
                                    "with the trained models on the Generate tab")


# --- a visitor's run: bounded, and theirs ---------------------------------------------------------------
def test_a_visitors_run_is_bounded_where_the_app_is_public(home, monkeypatch):
    from gpt2tune.config import TuneConfig
    from gpt2tune.visitor import (DEFAULT_VISITOR_MAX_MINUTES, DEFAULT_VISITOR_MAX_STEPS, VISITOR_CHECKPOINTS,
                                  bounded_config)

    asked = TuneConfig(epochs=1e9, save_total_limit=5)
    assert bounded_config(asked, ANONYMOUS) == asked  # a local app: unbounded, as before
    monkeypatch.setenv("SPACE_ID", "octocat/gpt2tune")
    monkeypatch.setenv("GPT2TUNE_OPEN_TRAINING", "1")
    assert bounded_config(asked, OWNER) == asked
    bounded = bounded_config(asked, ANONYMOUS)
    assert (bounded.step_limit, bounded.max_minutes, bounded.save_total_limit) == (
        DEFAULT_VISITOR_MAX_STEPS, DEFAULT_VISITOR_MAX_MINUTES, VISITOR_CHECKPOINTS)
    assert bounded.epochs == 1e9  # what was asked stays recorded; the limit is what trains
    monkeypatch.setenv("GPT2TUNE_VISITOR_MAX_STEPS", "40")
    monkeypatch.setenv("GPT2TUNE_VISITOR_MAX_MINUTES", "2.5")
    bounded = bounded_config(TuneConfig(step_limit=10, max_minutes=60), ANONYMOUS)
    assert (bounded.step_limit, bounded.max_minutes) == (10, 2.5)  # the tighter of the two
    monkeypatch.setenv("GPT2TUNE_VISITOR_MAX_STEPS", "lots")
    with pytest.raises(ValueError, match="^GPT2TUNE_VISITOR_MAX_STEPS must be a number"):
        bounded_config(asked, ANONYMOUS)


def test_no_new_visitor_run_while_the_runs_fill_their_disk_bound(home, monkeypatch):
    from gpt2tune.config import TuneConfig
    from gpt2tune.visitor import bounded_config

    monkeypatch.setenv("SPACE_ID", "octocat/gpt2tune")
    monkeypatch.setenv("GPT2TUNE_OPEN_TRAINING", "1")
    monkeypatch.setenv("GPT2TUNE_VISITOR_DISK_MB", "2")
    bounded_config(TuneConfig(), ANONYMOUS)
    (home / "runs" / "victim" / "model.safetensors").write_bytes(b"\0" * (3 * 2**20))
    with pytest.raises(ValueError) as error:
        bounded_config(TuneConfig(), ANONYMOUS)
    assert str(error.value) == ("this app's working folder uses 3 MB, its limit for visitors' runs is 2 MB "
                                "(GPT2TUNE_VISITOR_DISK_MB): no new run until the owner removes some")
    bounded_config(TuneConfig(), OWNER)  # the owner's own runs are the owner's call


@pytest.mark.parametrize("key", [None, "", "short", "x" * 257])
def test_a_visitor_needs_a_key_to_start(key):
    from gpt2tune.visitor import check_visitor_key

    with pytest.raises(ValueError, match="^no visitor key: this app keeps one in the browser"):
        check_visitor_key(key)


def test_a_visitor_controls_only_the_runs_its_browser_started(home, monkeypatch):
    from gpt2tune.visitor import VISITOR_FILE, check_may_control, record_starter

    mine, theirs, owners = home / "runs" / "mine", home / "runs" / "theirs", home / "runs" / "victim"
    record_starter(mine, "my-browser-key-0123456789")
    record_starter(theirs, "their-browser-key-0123456")
    assert "my-browser-key" not in (mine / VISITOR_FILE).read_text()  # only its hash is kept
    for folder in (mine, theirs, owners):  # a local app: anyone may, as before
        check_may_control(folder, ANONYMOUS, None, "stop")
    monkeypatch.setenv("SPACE_ID", "octocat/gpt2tune")
    monkeypatch.setenv("GPT2TUNE_OPEN_TRAINING", "1")
    check_may_control(mine, ANONYMOUS, "my-browser-key-0123456789", "stop")
    for folder, key in [(theirs, "my-browser-key-0123456789"), (owners, "my-browser-key-0123456789"),
                        (mine, None), (mine, "my-browser-key-012345678")]:
        with pytest.raises(ValueError) as error:
            check_may_control(folder, ANONYMOUS, key, "stop")
        assert str(error.value) == (f"you may stop only runs started from this browser: run {folder.name!r} was "
                                    "started by someone else")
    check_may_control(theirs, OWNER, None, "resume")  # the owner controls every run
    check_may_control(None, ANONYMOUS, None, "stop")  # nothing runs: nothing to refuse


def test_a_visitors_run_that_never_trained_leaves_no_folder(home):
    from gpt2tune.visitor import discard_if_untrained, record_starter

    untrained, trained, owners = home / "runs" / "untrained", home / "runs" / "trained", home / "runs" / "victim"
    for folder in (untrained, trained):
        record_starter(folder, "my-browser-key-0123456789")
        (folder / "data").mkdir()
        (folder / "data" / "qa.csv").write_text("question,answer\n")
    (trained / "run.json").write_text(json.dumps({"state": "failed", "step": 7}))
    assert discard_if_untrained(untrained) and not untrained.exists()
    assert not discard_if_untrained(trained) and trained.exists()  # it trained: its record stays
    assert not discard_if_untrained(owners) and owners.exists()  # not a visitor's run


# --- what bounds a run ----------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, rows, expected", [
    ({"epochs": 1e9, "step_limit": 300}, 100, 300),  # the attack: 2,000,000,000 steps asked
    ({"epochs": 2, "step_limit": 300}, 100, -1),  # 26 steps: under the limit, epochs decide as asked
    ({"epochs": 2, "step_limit": 20}, 100, 20),  # 13 per epoch, 26 planned
    ({"max_steps": 50, "step_limit": 40}, 100, 40),
    ({"max_steps": 30, "step_limit": 40}, 100, 30),
    ({"epochs": 1e9, "step_limit": 0}, 100, -1),  # no limit (the CLI, the owner)
    # 50 batches an epoch: 13 updates (the last one short), 39 in 3 epochs
    ({"epochs": 3, "step_limit": 39, "gradient_accumulation_steps": 4}, 400, -1),
    ({"epochs": 3, "step_limit": 40, "gradient_accumulation_steps": 4}, 400, -1),
    ({"epochs": 3, "step_limit": 38, "gradient_accumulation_steps": 4}, 400, 38),
])
def test_the_step_limit(settings, rows, expected):
    from gpt2tune.config import TuneConfig
    from gpt2tune.training.limits import trainer_max_steps

    assert trainer_max_steps(TuneConfig(batch_size=8, **settings), rows) == expected


def test_the_time_limit_stops_at_a_step_boundary_as_stop_does():
    from types import SimpleNamespace

    from transformers import TrainerControl

    from gpt2tune import events
    from gpt2tune.training.callbacks import StopCallback

    seen = []
    state = SimpleNamespace(global_step=4, is_world_process_zero=True)
    callback = StopCallback(lambda: False, max_minutes=5, on_event=seen.append)
    callback.on_train_begin(None, state, TrainerControl())
    control = callback.on_step_end(None, state, TrainerControl())
    assert not control.should_training_stop and callback.stopped_at is None  # within its minutes
    callback.deadline -= 5 * 60  # five minutes later, by construction
    control = callback.on_step_end(None, state, TrainerControl())
    assert control.should_training_stop and callback.stopped_at == 4
    assert [(type(event), event.message) for event in seen] == [
        (events.Status, "time limit of 5 minutes (max_minutes) reached: stopped at step 4; the model and a checkpoint "
                        "are saved and Resume continues")]


# --- wide files, long cells -----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json"])
def test_a_table_wider_than_the_cap_is_refused_before_it_is_parsed(suffix, tmp_path):
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.data.tables import MAX_COLUMNS

    columns = [f"c{i}" for i in range(MAX_COLUMNS + 1)]
    path = tmp_path / f"wide{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps([dict.fromkeys(columns, "x")]))
    else:
        sep = "\t" if suffix == ".tsv" else ","
        path.write_text(sep.join(columns) + "\n" + sep.join("x" for _ in columns) + "\n")
    with pytest.raises(ValueError) as error:
        load_qa_data(path)
    assert str(error.value) == (f"wide{suffix}: 1,001 columns, over the limit of 1,000: keep the question and answer "
                                "columns (and a few others) and save it again")


def test_a_cell_over_the_cap_is_refused_naming_its_row_and_column(tmp_path):
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.data.tables import MAX_CELL_CHARS

    path = tmp_path / "long.csv"
    path.write_text(f"question,answer,notes\nq1,a1,{'n' * (MAX_CELL_CHARS + 5)}\nq2,{'a' * (MAX_CELL_CHARS + 1)},x\n")
    with pytest.raises(ValueError) as error:
        load_qa_data(path)
    assert str(error.value) == ("long.csv: row 3, column 'answer' holds 1,000,001 characters, over the limit of "
                                "1,000,000 per cell: shorten it or leave the row out")
    path.write_text(f"question,answer,notes\nq1,a1,{'n' * (MAX_CELL_CHARS + 5)}\n")
    assert len(load_qa_data(path).frame) == 1  # a long cell in a column not trained on is no cost


# --- the card quotes data as text -----------------------------------------------------------------------
def test_the_card_escapes_the_data_it_quotes(tmp_path):
    from gpt2tune.hub.card import write_model_card
    from gpt2tune.runs import artifacts

    question = '<img src=x onerror="alert(1)"> **bold** | [link](http://evil.example)'
    artifacts.write_json(tmp_path / "samples.json", [{"question": question, "reference": "<b>ok</b>",
                                                      "generated": "`x` ~~gone~~ _it_"}])
    # the columns the run resolved, as its record keeps them beside its settings
    from gpt2tune.config import TuneConfig
    from gpt2tune.data.length import choose_max_length
    from gpt2tune.runs.resolved import Resolved, write_config

    resolved = Resolved(length=choose_max_length([20, 30]), question_column="q`uestion", answer_column="``a``",
                        base_model="gpt2", train_examples=1, eval_examples=1, truncated_train=0, truncated_eval=0,
                        device="cpu", precision="fp32", compile=False, batch_size=8, gradient_accumulation_steps=1)
    write_config(tmp_path / artifacts.CONFIG_FILE, TuneConfig(), resolved)
    card = write_model_card(tmp_path).read_text()
    assert "<img" not in card and "<b>" not in card
    assert ("| &lt;img src=x onerror=\"alert(1)\"&gt; \\*\\*bold\\*\\* \\| \\[link\\](http://evil.example) | "
            "&lt;b&gt;ok&lt;/b&gt; | \\`x\\` \\~\\~gone\\~\\~ \\_it\\_ |") in card
    assert "- columns used: question ← `` q`uestion ``, answer ← ``` ``a`` ```" in card
