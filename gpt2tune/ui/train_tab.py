"""Train tab: a view of one run, picked from every run in the working folder, and the form to start one.

A run is its folder (`gpt2tune.runs.record`): the settings it trains with, its data, its state and
its event log. Everything this tab shows is replayed from that folder (`gpt2tune.runs.view`), so a
reloaded page, a second browser or a restarted server shows the same run, its curve and its
numbers. Start makes a new run from the form; Resume continues the selected run with the settings
it saved (only max steps and epochs are taken from the form) and loads them into the form.

Errors never replace what is on screen: handlers here return the one-line message into the alert
beside the buttons (and a toast) and leave the other outputs as they were.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
import html
import threading
import time
from pathlib import Path

import gradio as gr

from gpt2tune.config import TuneConfig
from gpt2tune.runs import record
from gpt2tune.training.runner import default_runner
from gpt2tune.runs.view import RunView, load_view
from gpt2tune.ui.common import (
    base_model_to_load,
    current_caller,
    error_text,
    fmt_duration,
    message_line,
    public_text as _public,
    render_message,
    stat_tile,
    visitor_data,
)
from gpt2tune.ui.fields import build_config, field_component, form_value

# Set on other tabs (data, base model, hardware) or by the buttons (output_dir, resume).
OTHER_TABS = ("csv", "question_column", "answer_column", "eval_fraction", "seed", "max_length",
              "strip_html", "overlong", "answer_lists", "base_model", "allow_pickle", "device", "precision",
              "dataset", "dataset_config", "dataset_split", "dataset_revision")
SET_BY_BUTTONS = ("output_dir", "resume")
SET_BY_THE_GATE = ("hub_token", "hub_cache_dir")  # how the Hub dataset is read: the caller's, never a box
# Loaded back into the form when a run is shown (the data file and the base model are named in
# the run's summary instead: their values are server paths).
FORM_FROM_OTHER_TABS = ("question_column", "answer_column", "eval_fraction", "seed", "max_length", "strip_html",
                        "overlong", "answer_lists", "allow_pickle", "device", "precision")
BASICS = ("epochs", "max_steps", "learning_rate", "batch_size")
SECTIONS = {
    "Watch it learn": ("probe_questions", "early_stopping_patience", "eval_steps", "logging_steps", "report_to"),
    "Optimisation": ("gradient_accumulation_steps", "warmup_ratio", "weight_decay", "lr_scheduler", "dropout",
                     "max_grad_norm"),
    "What the model learns": ("train_on_answers_only", "pack"),
    "Method: full or LoRA": ("method", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "merge_lora"),
    "Checkpoints and evaluation": ("save_steps", "save_minutes", "save_total_limit", "eval_answer_samples",
                                   "answer_scoring_seconds",
                                   "torch_compile"),
}
IN_SECTIONS = tuple(name for names in SECTIONS.values() for name in names)
# a TuneConfig field added later still gets a box, in "More settings"
MORE_SETTINGS = tuple(f.name for f in dataclasses.fields(TuneConfig)
                      if f.name not in {*OTHER_TABS, *SET_BY_BUTTONS, *SET_BY_THE_GATE, *BASICS, *IN_SECTIONS})
# the boxes a shown run fills, in the order of the tab's outputs after its view
FORM_NAMES = ("run_name", *BASICS, *IN_SECTIONS, *MORE_SETTINGS, *FORM_FROM_OTHER_TABS)
LOSS_SERIES = ("train", "eval")  # the loss plot's curves
REDRAW_EVERY_S = 0.5  # a fast run logs many times a second; the page needs two frames a second at most
LOG_LINES = 200
N_VIEW = 9  # status, plot, metrics tiles, metrics JSON, probes, log, alert, run picker, run summary


@dataclass
class TrainTab:
    settings: dict  # TuneConfig field name → its component on this tab
    run_name: gr.Textbox
    outputs: list  # what a run's state is drawn into: a fresh page follows the run into them
    visitor_key: gr.BrowserState  # this browser's key: on a public app, a visitor controls only its own runs


def create_train_tab(other_inputs: dict) -> TrainTab:
    """other_inputs: the OTHER_TABS settings (TuneConfig field name → component) set on the Data and Checks tabs."""
    settings: dict[str, gr.Component] = {}

    with gr.Tab("3 · Train", id="train"):
        # Inside the tab: a component between the tabs shifts the position of every tab after it, and
        # the page then draws a tab opened later over the next one's button (Generate over Hub).
        visitor_key = gr.BrowserState(None, storage_key="gpt2tune-visitor-key")
        gr.Markdown(
            "Pick a run to see it, or set the hyper-parameters and press **Start** for a new one. Training runs on "
            "the server: close or reload this page, come back later, even after a server restart — the run, its "
            "curve and its settings are kept in its folder. **Stop** ends the run after the current step and saves "
            "a usable model and a checkpoint; **Resume** continues the selected run with its own saved settings and "
            "data (only *max steps* and *epochs* are taken from the form).",
            elem_classes="tab-intro",
        )
        # The settings come first on a wide screen; on a phone the run's buttons and status do (style.py)
        with gr.Row(equal_height=False, elem_id="train-row"):
            with gr.Column(scale=2, min_width=320, elem_id="train-settings"):
                with gr.Row():
                    picker = gr.Dropdown(label="Run", choices=[], value=None, scale=4, elem_id="run-picker", allow_custom_value=True,
                                         info="Every run in the working folder, newest first, with its state.")
                    refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
                run_name = gr.Textbox(label="Run name", placeholder="automatic (run-date-time)", elem_id="run-name",
                                      info="Start saves a new run under runs/<name> in the working folder; "
                                           "empty: a name from the date and time.")
                for pair in (BASICS[:2], BASICS[2:]):
                    with gr.Row():
                        for name in pair:
                            settings[name] = field_component(TuneConfig, name, min_width=150)
                for title, names in [*SECTIONS.items(), ("More settings", MORE_SETTINGS)]:
                    if not names:
                        continue
                    with gr.Accordion(title, open=False):
                        for name in names:
                            settings[name] = field_component(TuneConfig, name)
            with gr.Column(scale=3, elem_id="train-run"):
                with gr.Row():
                    start = gr.Button("Start", variant="primary", scale=2, min_width=80, elem_id="start-button")
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="stop-button")
                    resume = gr.Button("Resume", variant="secondary", scale=1, min_width=80, elem_id="resume-button")
                alert = message_line("train-alert", label="Alert")  # why Start, Stop or Resume refused
                estimate_button, estimate_box = create_estimate_row()
                status = gr.HTML(render_status(None), elem_id="train-status", label="Status")
                summary = gr.Markdown(elem_id="run-summary", elem_classes="summary", label="Run summary")
                loss_plot = gr.LinePlot(
                    x="step", y="loss", color="series", x_title="step", y_title="loss", label="Loss",
                    show_label=False, color_map=dict(zip(LOSS_SERIES, ("#6366f1", "#f97316"))), x_axis_format="d",
                    caption="train loss at every logged step, eval loss at every evaluation", elem_id="loss-plot",
                )
                metrics_html = gr.HTML(label="Metrics")
                with gr.Accordion("Probe timeline: the model's answers during training", open=True):
                    probes = gr.Dataframe(headers=["step", "question", "answer"], wrap=True, max_height=300,
                                          interactive=False, show_label=False, column_widths=["12%", "30%", "58%"],
                                          label="Probe timeline",
                                          elem_id="probe-timeline")
                with gr.Accordion("All metrics", open=False):
                    metrics_json = gr.JSON(show_label=False, label="All metrics")
                with gr.Accordion("Log", open=False):
                    log_box = gr.Textbox(lines=8, max_lines=16, show_label=False, autoscroll=True, label="Log")

    inputs = {**{name: other_inputs[name] for name in OTHER_TABS}, **settings, "run_name": run_name,
              "visitor_key": visitor_key}
    view = [status, loss_plot, metrics_html, metrics_json, probes, log_box, alert, picker, summary]
    form = [run_name, *settings.values(), *(other_inputs[name] for name in FORM_FROM_OTHER_TABS)]
    assert FORM_NAMES == ("run_name", *settings, *FORM_FROM_OTHER_TABS)  # the handlers fill `form` by these names
    outputs = view + form
    # concurrency_limit=None: a second Start must get its answer at once, not wait in a queue
    # show_progress hidden: these stream for as long as the run trains, and the status draws its own
    # progress; Gradio's indicator would pulse over every box of the form the whole time.
    start.click(start_training, inputs_kwargs=inputs, outputs=outputs, api_name="train", concurrency_limit=None,
                show_progress="hidden")
    resume.click(resume_training, inputs=[picker, settings["max_steps"], settings["epochs"], visitor_key],
                 outputs=outputs, api_name="resume", concurrency_limit=None, show_progress="hidden")
    stop.click(stop_training, inputs=visitor_key, outputs=[status, alert], api_name="stop", concurrency_limit=None)
    estimate_button.click(estimate_run, inputs_kwargs={k: v for k, v in inputs.items() if k != "run_name"},
                          outputs=estimate_box, api_name="estimate", concurrency_limit=1)
    picker.input(show_run, inputs=picker, outputs=outputs, api_name="show_run", concurrency_limit=None,
                 show_progress="hidden")
    refresh.click(show_run, inputs=picker, outputs=outputs, api_visibility="private", concurrency_limit=None,
                  show_progress="hidden")
    return TrainTab(settings, run_name, outputs, visitor_key)


# --- handlers ------------------------------------------------------------------------------------
def start_training(request: gr.Request = None, visitor_key=None, **values):
    """Start a new run from the form; every value passes the gate (`gpt2tune.visitor`) first, then the
    data file is copied into the run folder. A start refused after that leaves no folder behind."""
    import shutil

    from gpt2tune import visitor
    from gpt2tune.runs.store import new_run_name, run_dir

    session = _session(request)
    folder, created = None, False
    try:
        caller = _may_train(request, visitor_key)
        _refuse_while_busy()
        name = visitor.run_name(values.pop("run_name", "") or new_run_name())
        folder = run_dir(name)
        if _holds_a_run(folder):
            raise ValueError(f"run {name!r} already exists: choose another run name, or pick it in the run list "
                             "and press Resume")
        config = _form_config(values, caller, session, output_dir=str(folder))
        created = not folder.exists()
        config.csv = str(record.adopt_data(folder, config.csv))
        if visitor.visitor_bounded(caller):
            visitor.record_starter(folder, visitor_key)
        default_runner().start(config)
    except Exception as error:  # noqa: BLE001  (any failure becomes the inline alert, not an error pill)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        yield _refusal(error, session)
        return
    if config.step_limit or config.max_minutes:
        gr.Info("This run trains at most " + " and ".join(
            ([f"{config.step_limit:,} steps (step_limit)"] if config.step_limit else [])
            + ([f"{config.max_minutes:g} minutes per start or resume (max_minutes)"] if config.max_minutes else [])))
    yield from _follow(folder, session, load_form=False, own=True)


def create_estimate_row():
    """Time and memory before Start: a few real steps of the form's run, measured in a child process."""
    with gr.Row():
        button = gr.Button("Estimate time and memory", size="sm", scale=0, min_width=220, elem_id="estimate-button")
        box = gr.Markdown("", elem_id="run-estimate", label="Estimate")
    return button, box


def estimate_run(request: gr.Request = None, visitor_key=None, **values):
    """The form's run, a few steps of it timed on this machine (thrown away): "about N min for M
    steps, peak X GB (fits)", or the one line that says why not. It trains, so it passes Start's gate."""
    from gpt2tune.errors import first_line
    from gpt2tune.training.estimate import estimate_in_child

    try:
        config = _form_config(values, _may_train(request, visitor_key), _session(request))
        return f"**Estimate:** {html.escape(estimate_in_child(config).summary())}"
    except Exception as error:  # noqa: BLE001  (shown beside the button, in one line)
        return f"**No estimate:** {html.escape(_public(first_line(error)))}"


def _may_train(request, visitor_key):
    """The caller, once it may start training here (a visitor of a public app: with its browser's key)."""
    from gpt2tune import visitor
    from gpt2tune.hub.access import GENERATE_INSTEAD, check_owner_only

    caller = current_caller(request)
    check_owner_only(caller, "training", GENERATE_INSTEAD)
    if visitor.visitor_bounded(caller):
        visitor.check_visitor_key(visitor_key)
    return caller


def _form_config(values: dict, caller, session: str, **fixed) -> TuneConfig:
    """The form's run as the gate passes it: the data a visitor may read (an upload, the sample, a Hub
    dataset read as the gate says), the base model, checked, within a visitor's bounds."""
    from gpt2tune import visitor

    values = visitor_data(values)
    values["base_model"] = _base_model(values.get("base_model"), session)
    config = build_config(TuneConfig, {**values, **fixed, "resume": False})
    config.validate()
    return visitor.bounded_config(config, caller)


def resume_training(run=None, max_steps=None, epochs=None, visitor_key=None, request: gr.Request = None):
    """Continue the selected run (or the newest resumable one) with its own settings and data."""
    from gpt2tune.hub.access import GENERATE_INSTEAD, check_owner_only
    from gpt2tune.runs.store import run_dir
    from gpt2tune.visitor import check_may_control

    session = _session(request)
    try:
        caller = current_caller(request)
        check_owner_only(caller, "resuming runs", GENERATE_INSTEAD)
        _refuse_while_busy()
        name = (run or "").strip() or _last_resumable_run()
        folder = run_dir(name)
        if not folder.is_dir():
            raise ValueError(f"no run named {name!r}: pick one in the run list")
        check_may_control(folder, caller, visitor_key, "resume")
        config = TuneConfig(output_dir=str(folder), resume=True)
        if max_steps not in (None, ""):
            config.max_steps = int(float(max_steps))
        if epochs not in (None, ""):
            config.epochs = float(epochs)
        # refuses changed data, a finished run, no checkpoint; `effective` is what the resume trains with
        effective = default_runner().start(config)
    except Exception as error:  # noqa: BLE001  (any failure becomes the inline alert, not an error pill)
        yield _refusal(error, session)
        return
    # The form shows the settings the resume trains with (the max steps just asked for included),
    # not the record as it was a moment before the resume rewrote it.
    yield from _follow(folder, session, load_form=True, own=True, form=dataclasses.asdict(effective))


def stop_training(visitor_key=None, request: gr.Request = None):
    from gpt2tune.hub.access import GENERATE_INSTEAD, check_owner_only
    from gpt2tune.visitor import check_may_control

    runner = default_runner()
    folder = runner.active_run()
    try:  # where training is the owner's a visitor may not stop the owner's run; elsewhere only its own
        caller = current_caller(request)
        check_owner_only(caller, "stopping runs", GENERATE_INSTEAD)
        check_may_control(folder, caller, visitor_key, "stop")
    except ValueError as error:
        return gr.skip(), render_message(error_text(error))
    if runner.stop():  # the status says "saving the model and a checkpoint at this step"
        return render_status(load_view(folder, runner.live_state(folder))), ""
    return gr.skip(), render_message("No training run is in progress: nothing to stop.")


def show_run(run=None, request: gr.Request = None):
    """Show a run (the picked one; else the one training, else the newest): its settings go into the
    form, and while it trains, its curve follows it."""
    session = _session(request)
    try:
        folder = _chosen_run(run)
    except Exception as error:  # noqa: BLE001  (any failure becomes the inline alert, not an error pill)
        yield _refusal(error, session)
        return
    if folder is None:
        yield (render_status(None), None, "", {}, probe_frame(None), "", "", _picker(None), "",
               *[gr.skip()] * len(FORM_NAMES))
        return
    yield from _follow(folder, session, load_form=True, own=False)


def visitor_key(key=None) -> str:
    """This browser's key (kept in its local storage): the one it has, else a new random one."""
    import secrets

    from gpt2tune.visitor import MIN_KEY_LENGTH

    return key if isinstance(key, str) and len(key) >= MIN_KEY_LENGTH else secrets.token_urlsafe(24)


def follow_training(request: gr.Request = None):
    """A page that opens (or reloads) shows the run training now, else the newest run."""
    yield from show_run(None, request)


def training_status(run=None):
    """The run as it is now (for API clients that poll): the picked one, else the active or newest."""
    folder = _chosen_run(run)
    skip_form = [gr.skip()] * len(FORM_NAMES)
    if folder is None:
        return render_status(None), None, "", {}, probe_frame(None), "", "", _picker(None), "", *skip_form
    return (*_render_view(_view(folder), folder), *skip_form)


def _follow(folder: Path, session: str, load_form: bool, own: bool, form: dict | None = None):
    """Yield the run's view as it changes, until it is no longer active or this page shows another run.

    `own`: this page started the run, so its warnings and its outcome pop up here as well.
    `form`: the settings to load into the form (default: the run's record)."""
    runner = default_runner()
    token = _watching(session, folder)
    shown_warnings = 0
    first, listed_state = True, None
    while True:
        version = runner.version
        # a run whose process just died reads interrupted (or, discarded, absent) until the runner has
        # recorded why: follow it while the runner has it, and read the folder after asking
        active = runner.active_run()
        closing = active is not None and active.resolve() == folder.resolve()
        view = _view(folder)
        if own:
            for warning in view.warnings[shown_warnings:]:
                _toast_once(session, warning)
            shown_warnings = len(view.warnings)
        form = _form_values(form or view.config) if first and load_form else [gr.skip()] * len(FORM_NAMES)
        rendered = list(_render_view(view, folder, with_picker=view.state != listed_state))
        listed_state = view.state  # the run list is read again only when this run's state changes
        yield (*rendered, *form)
        first = False
        if (not view.active and not closing) or not _still_watching(session, token):
            break
        time.sleep(REDRAW_EVERY_S)
        runner.wait_for_change(version, timeout=5.0)
    if own and view.state == record.FAILED and view.error:
        gr.Warning(_public(view.error))
    elif own and view.state == record.STOPPED:
        gr.Info("Stopped: the model from the last step is saved (ready in Generate), and Resume continues it.")


# --- helpers -------------------------------------------------------------------------------------
def _view(folder: Path) -> RunView:
    runner = default_runner()
    view = load_view(folder, runner.live_state(folder))
    early_error = runner.errors.get(str(folder))
    if early_error and view.state in (None, record.FAILED):
        view.state, view.error = record.FAILED, early_error
    return view


def _render_view(view: RunView, folder: Path, with_picker: bool = True) -> tuple:
    log = "\n".join((view.messages + [f"warning: {w}" for w in view.warnings])[-LOG_LINES:])
    return (render_status(view), loss_frame(view), render_metrics(view.metrics), _public_metrics(view.metrics),
            probe_frame(view), _public(log), "", _picker(folder.name) if with_picker else gr.skip(),
            render_summary(view, resumed_note((record.read_record(folder) or {}).get("segments") or [])))


def _refusal(error: Exception, session: str) -> tuple:
    """One line in the alert under the buttons; every other output stays as it was."""
    return (*[gr.skip()] * 6, render_message(error_text(error)), gr.skip(), gr.skip(), *[gr.skip()] * len(FORM_NAMES))


def _refuse_while_busy() -> None:
    runner = default_runner()
    folder = runner.active_run()
    if folder is not None:
        view = _view(folder)
        where = f"step {view.step:,}" + (f" of {view.max_steps:,}" if view.max_steps else "")
        raise ValueError(f"run {folder.name!r} is training ({where}): stop it, or wait for it to end, "
                         "before starting or resuming another")


def _holds_a_run(folder: Path) -> bool:
    """Anything in the folder (a model, a checkpoint, a record, even of a run that failed): a new run
    of this name would replace or take over someone's run."""
    return folder.is_dir() and any(folder.iterdir())


def _chosen_run(run) -> Path | None:
    from gpt2tune.runs.store import list_runs, run_dir

    if run:
        folder = run_dir(run)
        if not folder.is_dir():
            raise ValueError(f"no run named {run!r}: pick one in the run list")
        return folder
    active = default_runner().active_run()
    if active is not None:
        return active
    runs = list_runs()
    return runs[0].path if runs else None


def _last_resumable_run() -> str:
    from gpt2tune.runs.store import list_runs

    for run in list_runs():
        if run.resumable and run.state not in (record.FINISHED, *record.ALIVE):
            return run.name
    raise ValueError("nothing to resume: no stopped or interrupted run has a checkpoint; pick a run or start a new one")


def _base_model(text, session: str) -> str:
    """The base model to train: as typed, or the offline stand-in (said once per page)."""
    resolved, warning = base_model_to_load(text)
    if warning:
        _toast_once(session, warning)
    return resolved


def _picker(selected: str | None):
    from gpt2tune.runs.store import list_runs

    runs = list_runs()
    choices = [(f"{run.name} · {run.state or 'no record'}" + (f" · step {run.step:,}" if run.step else ""), run.name)
               for run in runs]
    return gr.Dropdown(choices=choices, value=selected if selected in {r.name for r in runs} else None)


def _form_values(config: dict) -> list:
    """A run's settings, for the form (a field the run does not have keeps the page's value), as each
    box takes them (`fields.form_value`). The Run name is emptied: it names the next new run (a shown
    run is named in the status and the picker), and Start with the shown run's name would only be
    refused as "already exists"."""
    out = []
    for name in FORM_NAMES:
        if name == "run_name":
            out.append("")
        elif name not in config:
            out.append(gr.skip())
        else:
            out.append(form_value(TuneConfig, name, config[name]))
    return out


# --- one page, one run; warnings once per page ----------------------------------------------------
# Per page (Gradio session), the most recent SESSIONS_KEPT only: a server that runs for months meets
# many pages; a page forgotten here only sees a warning toast once more.
SESSIONS_KEPT = 256
_watch: collections.OrderedDict[str, tuple[int, str]] = collections.OrderedDict()
_warned: collections.OrderedDict[str, set[str]] = collections.OrderedDict()
_watch_lock = threading.Lock()
_counter = [0]


def _keep_recent(table: collections.OrderedDict, session: str) -> None:
    """`session` becomes the most recent entry; the oldest go beyond SESSIONS_KEPT (under _watch_lock)."""
    table.move_to_end(session)
    while len(table) > SESSIONS_KEPT:
        table.popitem(last=False)


def _session(request) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def _watching(session: str, folder: Path) -> int:
    """This page now shows `folder`: an older stream of the same page (another run) ends."""
    with _watch_lock:
        _counter[0] += 1
        _watch[session] = (_counter[0], str(folder))
        _keep_recent(_watch, session)
        return _counter[0]


def _still_watching(session: str, token: int) -> bool:
    with _watch_lock:
        return _watch.get(session, (token,))[0] == token


def _toast_once(session: str, message: str) -> None:
    with _watch_lock:
        seen = _warned.setdefault(session, set())
        _keep_recent(_warned, session)
        if message in seen:
            return
        seen.add(message)
    gr.Warning(_public(message))


# --- rendering -----------------------------------------------------------------------------------
def _public_metrics(metrics: dict | None) -> dict:
    return {k: (_public(v) if isinstance(v, str) else v) for k, v in (metrics or {}).items()}


def loss_frame(view: RunView | None):
    """Train and eval losses by step, for the loss plot."""
    import pandas as pd

    if view is None:
        return None
    rows = [(step, loss, "train") for step, loss in view.losses]
    rows += [(step, loss, "eval") for step, loss in view.evals]
    if not rows:
        return None  # an empty table would break the axes; None draws a blank
    # Gradio's LinePlot draws a curve only if its first drawing had it: later drawings swap the data
    # and keep the colours (a redraw, on a caption or legend change, even draws the data it had
    # before). A valueless row names each curve the run lacks, so both always have their colour
    # and a run with evaluations shown after one without still gets its eval curve.
    named = {series for _, _, series in rows}
    rows += [(rows[0][0], None, series) for series in LOSS_SERIES if series not in named]
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def probe_frame(view: RunView | None):
    import pandas as pd

    return pd.DataFrame(view.probes if view else [], columns=["step", "question", "answer"])


BADGES = {
    record.QUEUED: ("running", "Starting"), record.RUNNING: ("running", "Training"),
    record.STOPPING: ("stopping", "Stopping"), record.FINISHED: ("finished", "Finished"),
    record.STOPPED: ("stopped", "Stopped"), record.FAILED: ("failed", "Failed"),
    record.INTERRUPTED: ("interrupted", "Interrupted"),
}


def render_status(view: RunView | None) -> str:
    if view is None or view.state is None:
        return ('<div class="run-status idle"><span class="badge idle">Ready</span>'
                '<span class="status-text">No training run yet: press Start.</span></div>')
    badge_class, badge = BADGES.get(view.state, ("idle", view.state))
    name = html.escape(view.name)
    step, total = view.step, view.max_steps or 0
    fraction = 1.0 if view.state == record.FINISHED else (step / total if total else 0.0)
    resume_hint = (f"Resume continues from step {view.checkpoint_step:,}" if view.checkpoint_step
                   else "no checkpoint to resume from")
    if view.state == record.FAILED:
        detail = html.escape(_public(view.error or "unknown error"))
    elif view.state == record.QUEUED or (view.active and not view.losses):
        detail = "Preparing: " + html.escape(_public(view.messages[-1]) if view.messages else "loading data and model…")
    elif view.state == record.RUNNING and total and step >= total:
        detail = "Finishing: " + html.escape(_public(view.messages[-1]) if view.messages else "saving the model…")
    else:
        parts = [f"step {step:,} / {total:,}" if total else f"step {step:,}"]
        if view.epoch is not None:
            parts.append(f"epoch {view.epoch:.2f}")
        if view.loss is not None:
            parts.append(f"loss {view.loss:.4f}")
        if view.tokens_per_s:
            parts.append(f"{view.tokens_per_s:,.0f} tokens/s")
        if view.active:
            parts.append(f"ETA {fmt_duration(view.eta_s)}" if view.eta_s is not None else "ETA: measuring…")
        else:
            parts.append(f"took {fmt_duration(view.runtime_s)}")
        if view.segments > 1:
            parts.append(f"{view.segments} segments")
        if view.state == record.STOPPING:
            parts.append("saving the model and a checkpoint at this step…")
        elif view.state == record.FINISHED:
            parts.append("model saved, ready in Generate")
        elif view.state == record.STOPPED:
            parts.append("model saved · " + resume_hint)
        elif view.state == record.INTERRUPTED:
            parts.insert(0, "the server stopped while it trained")
            parts.append(resume_hint)
        detail = html.escape(" · ".join(parts))
    indeterminate = view.active and not view.losses
    bar = (f'<div class="progress {"indeterminate" if indeterminate else ""} {badge_class}">'
           f'<div class="progress-fill" style="width:{100 * min(1.0, fraction):.1f}%"></div></div>')
    return (f'<div class="run-status {badge_class}"><div class="status-head"><span class="badge {badge_class}">'
            f'{badge}</span><span class="run-name">{name}</span></div>{bar}'
            f'<div class="status-text">{detail}</div></div>')


def resumed_note(segments: list[dict]) -> str:
    """One line on each resume: where it continued, and the steps it trained again (those after its
    checkpoint that the segment before had already reached, e.g. before a kill)."""
    notes = []
    for before, after in zip(segments, segments[1:]):
        start, reached = int(after.get("from_step") or 0), int(before.get("to_step") or 0)
        if reached > start:
            notes.append(f"resumed from the checkpoint at step {start:,}: steps {start + 1:,}–{reached:,} repeated")
        else:
            notes.append(f"resumed at step {start:,}")
    return "; ".join(notes)


def render_summary(view: RunView, resumed: str = "") -> str:
    """The run in two lines: its data and what it resolved (the length used, the columns detected, the
    model loaded), and the settings Resume will train with; its resumes in a third. Before its data is
    prepared a run has nothing resolved yet, and says so."""
    config, data, resolved = view.config or {}, view.data or {}, view.resolved
    if not config:
        return ""
    file = data.get("file") or Path(str(config["csv"])).name
    rows = f", {data['rows']:,} rows" if data.get("rows") else ""
    digest = f", SHA-256 {data['sha256'][:12]}…" if data.get("sha256") else ""
    steps = f"{config['max_steps']:,} steps" if config["max_steps"] else f"{config['epochs']} epochs"
    if resolved is None:
        return f"**Data** `{html.escape(file)}` · preparing: the length, columns and model are not resolved yet"
    base = resolved.base_model
    base = Path(base).name if base.startswith("/") else base
    return (f"**Data** `{html.escape(file)}`{rows}{digest} · question ← `{html.escape(resolved.question_column)}`, "
            f"answer ← `{html.escape(resolved.answer_column)}` · {html.escape(resolved.length_line())}  \n"
            f"**Settings** base model `{html.escape(base)}` · {steps} · learning rate {config['learning_rate']} · "
            f"batch {resolved.batch_size} · max length {resolved.max_length} · seed {config['seed']}"
            + (f"  \n**Resumed** {resumed}" if resumed else ""))


METRIC_TILES = (  # (key, label, format); tiles show only the metrics a run has
    ("train_loss", "Train loss", "{:.4f}"), ("eval_loss", "Eval loss", "{:.4f}"),
    ("perplexity", "Perplexity", "{:.2f}"), ("global_step", "Steps", "{:,}"),
    ("train_runtime", "Runtime", None), ("train_real_tokens_per_s", "Tokens/s", "{:,.0f}"),
    ("answer_f1", "Answer F1 (eval)", "{:.3f}"), ("answer_rouge_l", "ROUGE-L (eval)", "{:.3f}"),
    ("answer_exact_match", "Exact match (eval)", "{:.3f}"),
)


def render_metrics(metrics: dict | None) -> str:
    if not metrics:
        return ""
    tiles = []
    for key, label, pattern in METRIC_TILES:
        value = metrics.get(key)
        if value is None:
            continue
        text = pattern.format(value) if pattern else fmt_duration(value)
        tiles.append(stat_tile(label, text, tone="good"))
    verdict = metrics.get("memorisation") or {}
    note = (f'<div class="verdict"><b>{html.escape(str(verdict.get("verdict", "")))}</b>: '
            f'{html.escape(str(verdict.get("text", "")))}</div>' if verdict else "")
    return f'<div class="stat-grid">{"".join(tiles)}</div>{note}{dashboard_note(metrics)}'


def dashboard_note(metrics: dict) -> str:
    """Where the run's TensorBoard or Trackio logs are, and the command that opens their dashboard."""
    tracking = metrics.get("tracking") or {}
    if not tracking.get("command"):
        return ""
    return (f'<div class="verdict"><b>Dashboard ({html.escape(tracking["report_to"])})</b>: logs in '
            f'<code>{html.escape(tracking["logs"])}</code>; open with <code>{html.escape(tracking["command"])}</code>'
            '</div>')

