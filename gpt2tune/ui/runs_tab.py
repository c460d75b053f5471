"""Runs tab: every run in the working folder, with its settings, metrics and loss curves overlaid."""

from __future__ import annotations

import time

import gradio as gr

from gpt2tune.ui.common import ui_errors

COLUMNS = ["run", "model", "steps", "train loss", "eval loss", "perplexity", "learning rate", "base model", "modified"]


def create_runs_tab() -> None:
    with gr.Tab("Runs", id="runs") as tab:
        gr.Markdown("Every run in the working folder, newest first. Pick runs to compare their loss curves.",
                    elem_classes="tab-intro")
        with gr.Row():
            chosen = gr.Dropdown(label="Runs to plot", choices=[], value=[], multiselect=True, scale=4)
            refresh = gr.Button("Refresh", size="sm", scale=1)
        curves = gr.LinePlot(x="step", y="loss", color="curve", x_title="step", y_title="loss",
                             label="Loss curves", show_label=False, x_axis_format="d")
        table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, max_height=400, show_label=False,
                             label="Runs")

    outputs = [table, chosen, curves]
    refresh.click(list_runs_view, inputs=chosen, outputs=outputs, api_name="runs")
    tab.select(list_runs_view, inputs=chosen, outputs=outputs, api_visibility="private")
    chosen.input(plot_runs, inputs=chosen, outputs=curves, api_visibility="private")


@ui_errors
def list_runs_view(chosen=None):
    import pandas as pd

    from gpt2tune.runs.store import list_runs

    runs = list_runs()
    names = [run.name for run in runs]
    chosen = [name for name in (chosen or []) if name in names] or names[:5]
    rows = []
    for run in runs:
        metrics, saved = run.metrics, run.saved
        base_model = saved.resolved.base_model if saved and saved.resolved else metrics.get("base_model")
        rows.append([
            run.name,
            "yes" if run.has_model else ("checkpoint" if run.resumable else "no"),
            metrics.get("global_step", max((h.get("step", 0) for h in run.history), default=0)),
            _round(metrics.get("train_loss")), _round(metrics.get("eval_loss")), _round(metrics.get("perplexity"), 2),
            saved.settings.learning_rate if saved else "", _base_name(base_model),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(run.modified)),
        ])
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table, gr.Dropdown(choices=names, value=chosen), plot_runs(chosen)


@ui_errors
def plot_runs(chosen):
    import pandas as pd

    from gpt2tune.runs.store import load_run, overlay_rows

    points = overlay_rows([load_run(name) for name in chosen or []])
    if not points:
        return gr.LinePlot(value=None)
    frame = pd.DataFrame(points, columns=["run", "step", "loss", "split"])
    frame["curve"] = frame["run"] + " · " + frame["split"]
    # a caption naming the runs also makes the plot redraw its colours for a new selection
    return gr.LinePlot(value=frame, caption="runs: " + ", ".join(dict.fromkeys(frame["run"])))


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, (int, float)) else ""


def _base_name(base) -> str:
    from pathlib import Path

    return Path(str(base)).name if base else ""
