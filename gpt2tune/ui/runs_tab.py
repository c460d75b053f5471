"""Runs tab: every run in the working folder, with its settings, metrics and loss curves overlaid."""

from __future__ import annotations

import time

import gradio as gr

from gpt2tune.ui.common import listen, message_line

# Short one-word-a-line headers: a phone's narrow columns then wrap between words, never inside one.
COLUMNS = ["run", "state", "method", "steps", "model", "train loss", "best eval loss", "perplexity", "learning rate",
           "base model", "modified"]


SPLITS = ("eval", "train")  # the losses in a run's history (store.overlay_rows)


def create_runs_tab() -> None:
    with gr.Tab("Runs", id="runs") as tab:
        gr.Markdown("Every run in the working folder, newest first. Pick runs to compare their loss curves.",
                    elem_classes="tab-intro")
        with gr.Row():
            chosen = gr.Dropdown(label="Runs to plot", choices=[], value=[], multiselect=True, scale=4)
            refresh = gr.Button("Refresh", size="sm", scale=1)
        message = message_line("runs-message")
        # one loss at a time, coloured by run: a legend of run names fits a phone's width
        split = gr.Radio(list(SPLITS), value="eval", label="Loss", elem_id="runs-split")
        curves = gr.LinePlot(x="step", y="loss", color="run", x_title="step", y_title="loss",
                             label="Loss curves", show_label=False, x_axis_format="d", elem_id="runs-curves")
        table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, max_height=400, show_label=False,
                             label="Runs", elem_id="runs-table")
        caption = gr.State(None)  # the plot's caption, sent after its data (`plot_runs`)

        plotted, drawn = [chosen, split], [curves, caption]
        events = [listen(refresh.click, list_runs_view, inputs=plotted, outputs=[table, chosen, *drawn],
                         message=message, api_name="runs"),
                  listen(tab.select, list_runs_view, inputs=plotted, outputs=[table, chosen, *drawn], message=message)]
        events += [listen(control.input, plot_runs, inputs=plotted, outputs=drawn, message=message)
                   for control in (chosen, split)]
        for event in events:
            event.then(lambda text: gr.LinePlot(caption=text), inputs=caption, outputs=curves,
                       api_visibility="private", queue=False)


def list_runs_view(chosen=None, split="eval"):
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
            run.state or "",
            _method(saved.settings if saved else None),
            metrics.get("global_step", run.step or max((h.get("step", 0) for h in run.history), default=0)),
            "yes" if run.has_model else ("checkpoint" if run.resumable else "no"),
            _round(metrics.get("train_loss")), _round(_best_eval_loss(run)), _round(metrics.get("perplexity"), 2),
            saved.settings.learning_rate if saved else "", _base_name(base_model),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(run.modified)),
        ])
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table, gr.Dropdown(choices=names, value=chosen), *plot_runs(chosen, split)


def plot_runs(chosen, split="eval"):
    """The chosen runs' curves, and the caption saying what they are, for the plot to take afterwards.

    Gradio's LinePlot redraws its chart (colours and legend) when its caption changes, but with the
    runs of the data it showed before: sent with the data, a new selection would be drawn with the
    previous one's colours (a run just added has no line, a run just removed stays in the legend).
    Sent after the data, the caption redraws the chart with the runs now shown."""
    import pandas as pd

    from gpt2tune.runs.store import load_run, overlay_rows

    points = [point for point in overlay_rows([load_run(name) for name in chosen or []]) if point["split"] == split]
    if not points:
        return gr.LinePlot(value=None), f"no {split} loss logged yet" if chosen else None
    runs = dict.fromkeys(point["run"] for point in points)  # the caption changes whenever they do
    return (gr.LinePlot(value=pd.DataFrame(points, columns=["run", "step", "loss", "split"])),
            f"{split} loss of " + ", ".join(runs))


def _method(settings) -> str:
    if settings is None:
        return ""
    return f"LoRA r={settings.lora_r}" if settings.method == "lora" else "full"


def _best_eval_loss(run) -> float | None:
    """The lowest eval loss of the run's evaluations (the final one when it had only that)."""
    losses = [float(h["eval_loss"]) for h in run.history if h.get("eval_loss") is not None]
    final = run.metrics.get("eval_loss")
    return min(losses + ([float(final)] if isinstance(final, (int, float)) else []), default=None)


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, (int, float)) else ""


def _base_name(base) -> str:
    from pathlib import Path

    return Path(str(base)).name if base else ""
