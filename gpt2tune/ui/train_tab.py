"""Train tab: hyper-parameters from TuneConfig, Start / Stop / Resume, a live loss curve.

The job belongs to the process-wide TrainingRunner, not to the page: Start streams the run's state
while the page is open, and a page opened later (or reloaded) re-attaches through `demo.load`,
which follows the run the same way until it ends.
"""

from __future__ import annotations

import dataclasses
import html
import time
from pathlib import Path

import gradio as gr

from gpt2tune.config import TuneConfig
from gpt2tune.runs.runner import FAILED, FINISHED, IDLE, RUNNING, STOPPED, STOPPING, RunSnapshot, default_runner
from gpt2tune.ui.common import fmt_duration, resolve_base_model, stat_tile, ui_errors
from gpt2tune.ui.data_tab import data_path
from gpt2tune.ui.fields import build_config, field_component

# Set on other tabs (data, base model, hardware) or by the buttons (output_dir, resume).
OTHER_TABS = ("csv", "question_column", "answer_column", "eval_fraction", "seed", "max_length",
              "base_model", "allow_pickle", "device", "precision")
SET_BY_BUTTONS = ("output_dir", "resume")
BASICS = ("epochs", "max_steps", "learning_rate", "batch_size")
SECTIONS = {
    "Watch it learn": ("probe_questions", "early_stopping_patience", "eval_steps", "logging_steps", "report_to"),
    "Optimisation": ("gradient_accumulation_steps", "warmup_ratio", "weight_decay", "lr_scheduler", "dropout",
                     "max_grad_norm"),
    "What the model learns": ("train_on_answers_only", "pack"),
    "Method: full or LoRA": ("method", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "merge_lora"),
    "Checkpoints and evaluation": ("save_steps", "save_total_limit", "eval_answer_samples", "torch_compile"),
}
REDRAW_EVERY_S = 0.5  # a fast run logs many times a second; the page needs two frames a second at most
LOG_LINES = 200


def create_train_tab(elems: dict) -> None:
    placed = set(OTHER_TABS) | set(SET_BY_BUTTONS) | set(BASICS) | {n for names in SECTIONS.values() for n in names}
    # a TuneConfig field added later still gets a box, in "More settings"
    unplaced = [f.name for f in dataclasses.fields(TuneConfig) if f.name not in placed]
    settings: dict[str, gr.Component] = {}

    with gr.Tab("3 · Train", id="train"):
        gr.Markdown(
            "Set the hyper-parameters and press **Start**. Training runs on the server: you can close this page "
            "and come back, the curve picks up where it is. **Stop** ends the run after the current step and saves "
            "a usable model; **Resume** continues a run from its latest checkpoint.",
            elem_classes="tab-intro",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                run_name = gr.Textbox(label="Run name", placeholder="automatic (run-date-time)",
                                      info="Saved under runs/<name> in the working folder; Resume uses it too.")
                for pair in (BASICS[:2], BASICS[2:]):
                    with gr.Row():
                        for name in pair:
                            settings[name] = field_component(TuneConfig, name, min_width=150)
                for title, names in [*SECTIONS.items(), ("More settings", tuple(unplaced))]:
                    if not names:
                        continue
                    with gr.Accordion(title, open=title == "Watch it learn"):
                        for name in names:
                            settings[name] = field_component(TuneConfig, name)
            with gr.Column(scale=3):
                with gr.Row():
                    start = gr.Button("Start", variant="primary", scale=2, min_width=80, elem_id="start-button")
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=80)
                    resume = gr.Button("Resume", variant="secondary", scale=1, min_width=80)
                status = gr.HTML(render_status(RunSnapshot()), elem_id="train-status")
                loss_plot = gr.LinePlot(
                    x="step", y="loss", color="series", x_title="step", y_title="loss", label="Loss",
                    show_label=False, color_map={"train": "#6366f1", "eval": "#f97316"}, x_axis_format="d",
                    caption="train loss at every logged step, eval loss at every evaluation", elem_id="loss-plot",
                )
                metrics_html = gr.HTML()
                with gr.Accordion("Probe timeline: the model's answers during training", open=True):
                    probes = gr.Dataframe(headers=["step", "question", "answer"], wrap=True, max_height=300,
                                          interactive=False, show_label=False, column_widths=["12%", "30%", "58%"],
                                          elem_id="probe-timeline")
                with gr.Accordion("All metrics", open=False):
                    metrics_json = gr.JSON(show_label=False)
                with gr.Accordion("Log", open=False):
                    log_box = gr.Textbox(lines=8, max_lines=16, show_label=False, autoscroll=True)

    elems.update(settings)
    elems["train.run_name"] = run_name
    inputs = {"csv": elems["data.file"], **{name: elems[name] for name in OTHER_TABS if name != "csv"},
              **settings, "run_name": run_name}
    outputs = [status, loss_plot, metrics_html, metrics_json, probes, log_box]
    # concurrency_limit=None: a second Start must get the "busy" answer at once, not wait in a queue
    start.click(start_training, inputs_kwargs=inputs, outputs=outputs, api_name="train", concurrency_limit=None)
    resume.click(resume_training, inputs_kwargs=inputs, outputs=outputs, api_name="resume", concurrency_limit=None)
    stop.click(stop_training, outputs=status, api_name="stop", concurrency_limit=None)
    elems["train.outputs"] = outputs


# --- handlers ------------------------------------------------------------------------------------
def _config(values: dict, resume: bool) -> TuneConfig:
    from gpt2tune.runs.store import new_run_name, run_dir

    run_name = (values.pop("run_name", "") or "").strip()
    values["csv"] = data_path(values.get("csv"))
    values["output_dir"] = str(run_dir(run_name or new_run_name()))
    values["base_model"], _ = resolve_base_model(values.get("base_model"))
    return build_config(TuneConfig, {**values, "resume": resume})


@ui_errors
def start_training(**values):
    default_runner().start(_config(values, resume=False))
    yield from _follow()


@ui_errors
def resume_training(**values):
    from gpt2tune.runs import artifacts

    name = values["run_name"] = (values.get("run_name") or "").strip() or _last_resumable_run()
    config = _config(values, resume=True)
    checkpoint = artifacts.latest_checkpoint(config.output_dir)
    if checkpoint is None:
        raise ValueError(f"nothing to resume: run {name!r} has no checkpoint yet "
                         "(one is written every 'Checkpoint every N steps' steps)")
    gr.Info(f"Resuming {name} from {checkpoint.name}")
    default_runner().start(config)
    yield from _follow()


def _last_resumable_run() -> str:
    """The run this app trained last, if it can be resumed; else the newest resumable one."""
    from gpt2tune.runs.store import list_runs

    resumable = [run.name for run in list_runs() if run.resumable]
    if not resumable:
        raise ValueError("nothing to resume: no run has a checkpoint yet; type the run name or start a new run")
    last = default_runner().snapshot().output_dir
    return Path(last).name if last and Path(last).name in resumable else resumable[0]


def _follow(report_outcome: bool = True):
    """Yield the run's state as it changes, until it ends; a failed run raises its one-line error
    (only to the page that started it: a page re-attaching shows the error in the status line)."""
    runner = default_runner()
    snapshot = runner.snapshot()
    warned = 0
    while True:
        if report_outcome:
            for warning in snapshot.warnings[warned:]:
                gr.Warning(warning)
            warned = len(snapshot.warnings)
        yield render(snapshot)
        if not snapshot.active:
            break
        time.sleep(REDRAW_EVERY_S)
        snapshot = runner.wait_for_change(snapshot.version, timeout=5.0)
    if not report_outcome:
        return
    if snapshot.status == FAILED:
        raise ValueError(snapshot.error)
    if snapshot.status == STOPPED:
        gr.Info("Stopped: the model from the last step is saved and ready in the Generate tab.")


@ui_errors
def stop_training():
    runner = default_runner()
    if runner.stop():
        gr.Info("Stopping after the current step; the model at that step will be saved.")
    else:
        gr.Warning("No training run is in progress.")
    return render_status(runner.snapshot())


def follow_training():
    """For a page that did not start the run (reloaded, or another visitor): follow it to its end."""
    yield from _follow(report_outcome=False)


def training_status():
    """The run as it is now (for API clients that poll)."""
    return render(default_runner().snapshot())


# --- rendering -----------------------------------------------------------------------------------
def render(snapshot: RunSnapshot) -> tuple:
    return (
        render_status(snapshot),
        loss_frame(snapshot),
        render_metrics(snapshot.metrics),
        snapshot.metrics or {},
        probe_frame(snapshot),
        "\n".join((snapshot.messages + [f"warning: {w}" for w in snapshot.warnings])[-LOG_LINES:]),
    )


def loss_frame(snapshot: RunSnapshot):
    import pandas as pd

    rows = [(step, loss, "train") for step, loss in snapshot.losses]
    rows += [(step, loss, "eval") for step, loss in snapshot.evals]
    if not rows:
        return None  # an empty table would break the axes; None draws a blank
    config = snapshot.config or {}
    if not snapshot.evals and config.get("eval_fraction") and config.get("eval_steps"):
        # The plot fixes its colours at its first draw (often in a hidden tab) and later only swaps
        # the data: a valueless "eval" row names the eval curve from the start, so it gets a colour.
        rows.append((rows[0][0], None, "eval"))
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def probe_frame(snapshot: RunSnapshot):
    import pandas as pd

    return pd.DataFrame(snapshot.probes, columns=["step", "question", "answer"])


BADGES = {
    RUNNING: ("running", "Training"), STOPPING: ("stopping", "Stopping"), FINISHED: ("finished", "Finished"),
    STOPPED: ("stopped", "Stopped"), FAILED: ("failed", "Failed"),
}


def render_status(snapshot: RunSnapshot) -> str:
    if snapshot.status == IDLE:
        return ('<div class="run-status idle"><span class="badge idle">Ready</span>'
                '<span class="status-text">No training run yet: press Start.</span></div>')
    badge_class, badge = BADGES[snapshot.status]
    name = html.escape(_run_name(snapshot))
    progress = snapshot.progress or {}
    step, total = progress.get("step", 0), progress.get("max_steps") or 0
    done = snapshot.status in (FINISHED, STOPPED)
    fraction = 1.0 if snapshot.status == FINISHED else (step / total if total else 0.0)
    if snapshot.status == FAILED:
        detail = html.escape(snapshot.error or "unknown error")
    elif not progress and snapshot.active:
        detail = "Preparing: " + html.escape(snapshot.messages[-1] if snapshot.messages else "loading data and model…")
    elif snapshot.status == RUNNING and total and step >= total:
        detail = "Finishing: " + html.escape(snapshot.messages[-1] if snapshot.messages else "saving the model…")
    else:
        parts = [f"step {step:,} / {total:,}" if total else f"step {step:,}"]
        if progress.get("epoch") is not None:
            parts.append(f"epoch {progress['epoch']:.2f}")
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.4f}")
        if progress.get("tokens_per_s"):
            parts.append(f"{progress['tokens_per_s']:,.0f} tokens/s")
        if snapshot.active:
            parts.append(f"ETA {fmt_duration(progress.get('eta_s'))}")
        elif snapshot.finished_at and snapshot.started_at:
            parts.append(f"took {fmt_duration(snapshot.finished_at - snapshot.started_at)}")
        if snapshot.status == STOPPING:
            parts.append("saving the model at this step…")
        if done:
            parts.append("model saved, ready in Generate")
        detail = " · ".join(parts)
    indeterminate = snapshot.active and not progress
    bar = (f'<div class="progress {"indeterminate" if indeterminate else ""} {badge_class}">'
           f'<div class="progress-fill" style="width:{100 * min(1.0, fraction):.1f}%"></div></div>')
    return (f'<div class="run-status {badge_class}"><div class="status-head"><span class="badge {badge_class}">'
            f'{badge}</span><span class="run-name">{name}</span></div>{bar}'
            f'<div class="status-text">{detail}</div></div>')


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


def _run_name(snapshot: RunSnapshot) -> str:
    return Path(snapshot.output_dir).name if snapshot.output_dir else ""
