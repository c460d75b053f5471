"""Data tab: pick a question/answer file, map its columns, see what training will make of it."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

import gradio as gr

from gpt2tune.config import TuneConfig
from gpt2tune.paths import SAMPLE_CSV, TOKENIZER_DIR, mtime, work_dir
from gpt2tune.ui.common import stat_tile, ui_errors, visitor_data, visitor_file
from gpt2tune.ui.fields import build_config, field_component

# Spreadsheets are accepted so that the loader can say what to do with them (save as CSV).
FILE_TYPES = [".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".xlsx", ".xls"]
PREVIEW_ROWS = 20
HISTOGRAM_BINS = 30
KEEP_DOWNLOADS = 8  # rejected-rows folders kept under downloads/: enough for previews running at once
HUB_FIELDS = {"dataset": "user/name", "dataset_split": "train", "dataset_config": "", "dataset_revision": "main"}
LENGTH_VIEWS = {"whole example": "token_lengths", "question": "question_lengths", "answer": "answer_lengths"}
DATA_OPTIONS = ("strip_html", "overlong", "answer_lists")  # how the data is made into examples: set here, trained so


@dataclass
class DataTab:
    file: gr.File
    question_column: gr.Dropdown
    answer_column: gr.Dropdown
    eval_fraction: gr.Slider
    seed: gr.Number
    max_length: gr.Slider
    hub: dict  # the Hub dataset's fields (dataset, dataset_split, ...) → their text boxes
    options: dict  # DATA_OPTIONS → their boxes
    preview_outputs: list  # what `preview_data` fills: a fresh page shows the preview at once
    controls: dict = None  # the tab's own buttons and views, wired by `connect_data_tab`
    model: dict = None  # base_model and allow_pickle, from the Checks tab (`connect_data_tab`)

    def config_inputs(self) -> dict:
        """The TuneConfig settings this tab holds, by field name (`csv` is the file)."""
        return dict(csv=self.file, question_column=self.question_column, answer_column=self.answer_column,
                    eval_fraction=self.eval_fraction, seed=self.seed, max_length=self.max_length, **self.hub,
                    **self.options)

    def preview_inputs(self) -> dict:
        """`preview_data`'s keyword arguments: this tab's settings and the base model's."""
        return dict(file=self.file, question_column=self.question_column, answer_column=self.answer_column,
                    eval_fraction=self.eval_fraction, seed=self.seed, max_length=self.max_length, **self.hub,
                    **self.options, **(self.model or {}))


def create_data_tab() -> DataTab:
    with gr.Tab("1 · Data", id="data"):
        gr.Markdown(
            "Upload a table of **questions and answers** (CSV, TSV, JSON or JSONL), or keep the bundled sample. "
            "Check what will be trained on before spending time on training.",
            elem_classes="tab-intro",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                file = gr.File(value=str(SAMPLE_CSV), label="Question/answer file", file_types=FILE_TYPES, height=140,
                               elem_id="data-file")
                sample = gr.Button("Use the sample dataset", size="sm", variant="secondary")
                with gr.Accordion("…or a dataset from the Hugging Face Hub", open=False):
                    hub = {name: field_component(TuneConfig, name, value="", placeholder=hint)
                           for name, hint in HUB_FIELDS.items()}
                with gr.Group(visible=False) as mapping:
                    gr.Markdown("**Which columns hold the questions and the answers?**", elem_classes="group-title")
                    question_column = gr.Dropdown(label="Question column", choices=[], value=None, allow_custom_value=True)
                    answer_column = gr.Dropdown(label="Answer column", choices=[], value=None, allow_custom_value=True)
                eval_fraction = field_component(TuneConfig, "eval_fraction", gr.Slider, minimum=0, maximum=0.5, step=0.05)
                seed = field_component(TuneConfig, "seed")
                max_length = field_component(TuneConfig, "max_length", gr.Slider, minimum=0, maximum=1024, step=64)
                with gr.Accordion("Cleaning, long examples, answer lists", open=False):
                    options = {name: field_component(TuneConfig, name) for name in DATA_OPTIONS}
                preview = gr.Button("Preview", variant="primary")
            with gr.Column(scale=5):
                stats = gr.HTML(_empty_stats(), label="Summary tiles")
                summary = gr.Markdown(elem_classes="summary", label="Summary", show_label=False)
                with gr.Row():
                    view = gr.Radio(list(LENGTH_VIEWS), value="whole example", label="Token lengths of", scale=3)
                histogram = gr.BarPlot(
                    x="tokens", y="examples", color="fits", x_title="GPT-2 tokens", y_title="examples",
                    color_map={"fits": "#6366f1", "truncated": "#f97316"}, label="Length histogram",
                    show_label=False, x_bin=10, y_aggregate="sum", x_axis_format="d",
                )
                table = gr.Dataframe(label="First rows (as trained on)", wrap=True, max_height=360, interactive=False,
                                     column_widths=["35%", "65%"], elem_id="preview-table")
                with gr.Accordion("Rejected rows", open=False) as rejected_box:
                    rejected = gr.Dataframe(wrap=True, max_height=300, interactive=False, show_label=False,
                                            label="Rejected rows")
                    download = gr.DownloadButton("Download rejected rows (CSV)", visible=False, size="sm")
        lengths = gr.State({})

    preview_outputs = [stats, summary, histogram, table, rejected, rejected_box, download, lengths]
    return DataTab(file, question_column, answer_column, eval_fraction, seed, max_length, hub, options,
                   preview_outputs, controls=dict(sample=sample, preview=preview, mapping=mapping, view=view,
                                                  lengths=lengths))


def connect_data_tab(tab: DataTab, model_inputs: dict) -> None:
    """Wire the tab's events once the base model's boxes exist (the Checks tab, built after this one):
    the preview measures the data against that model's context, as training does."""
    tab.model = model_inputs
    _wire(tab, **tab.controls)


def _wire(tab: DataTab, sample, preview, mapping, view, lengths) -> None:
    file, question_column, answer_column = tab.file, tab.question_column, tab.answer_column
    hub, max_length, eval_fraction = tab.hub, tab.max_length, tab.eval_fraction
    preview_outputs = tab.preview_outputs
    preview_inputs = tab.preview_inputs()
    column_outputs = [question_column, answer_column, mapping]

    file.upload(inspect_columns, inputs=file, outputs=column_outputs, api_name="columns").success(
        preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_visibility="private")
    file.clear(clear_preview, outputs=column_outputs + preview_outputs, api_visibility="private", queue=False)
    sample.click(lambda: str(SAMPLE_CSV), outputs=file, api_visibility="private").success(
        inspect_columns, inputs=file, outputs=column_outputs, api_visibility="private").success(
        preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_visibility="private")
    hub["dataset"].submit(inspect_dataset_columns, inputs=list(hub.values()), outputs=column_outputs,
                          api_visibility="private").success(
        preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_visibility="private")
    preview.click(preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_name="preview")
    for control in (max_length, eval_fraction):
        control.release(preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_visibility="private")
    for control in (question_column, answer_column):
        control.input(preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_visibility="private")
    for control in tab.options.values():
        control.change(preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_visibility="private")
    view.change(length_histogram, inputs=[lengths, view, max_length], outputs=preview_outputs[2],
                api_visibility="private", queue=False)


# --- handlers ------------------------------------------------------------------------------------
@ui_errors
def inspect_columns(file):
    """Fill the column pickers from the file's header, pre-selecting the likeliest columns."""
    from gpt2tune.data.load import read_table, suggest_columns

    frame, info = read_table(visitor_file(file))
    question, answer = suggest_columns(info["columns_found"])
    choices = list(frame.columns)
    # only ask when the header does not simply say question/answer
    needs_mapping = [c.strip().lower() for c in info["columns_found"]] != ["question", "answer"]
    return (
        gr.Dropdown(choices=choices, value=question if question in choices else None),
        gr.Dropdown(choices=choices, value=answer if answer in choices else None),
        gr.Group(visible=needs_mapping),
    )


@ui_errors
def inspect_dataset_columns(dataset, dataset_split=None, dataset_config=None, dataset_revision=None):
    """The column pickers for a Hub dataset, as `inspect_columns` fills them for a file."""
    from gpt2tune.data.hub_dataset import read_hub_table
    from gpt2tune.data.load import suggest_columns

    if not (dataset or "").strip():
        raise ValueError("no Hub dataset: enter its id as user/name")
    hub = visitor_data(dict(dataset=dataset, dataset_split=dataset_split, dataset_config=dataset_config,
                            dataset_revision=dataset_revision))
    table = read_hub_table(hub["dataset"], hub["dataset_config"], hub["dataset_split"], hub["dataset_revision"],
                           token=hub["hub_token"], cache_dir=hub["hub_cache_dir"])
    question, answer = suggest_columns(table.header)
    return (gr.Dropdown(choices=table.header, value=question), gr.Dropdown(choices=table.header, value=answer),
            gr.Group(visible=True))


@ui_errors
def preview_data(file=None, question_column=None, answer_column=None, eval_fraction=TuneConfig.eval_fraction,
                 seed=TuneConfig.seed, max_length=TuneConfig.max_length, dataset=None, dataset_split=None,
                 dataset_config=None, dataset_revision=None, strip_html=TuneConfig.strip_html,
                 overlong=TuneConfig.overlong, answer_lists=TuneConfig.answer_lists, base_model=None,
                 allow_pickle=False):
    """What training will make of the data: loaded and measured by the function `check` and `train` use
    (`training.prepare.preview_data`), with the same settings and the base model's context."""
    from gpt2tune.heap import release_freed_memory
    from gpt2tune.model import model_context
    from gpt2tune.training.prepare import preview_data as measure
    from gpt2tune.ui.common import _resolve_remembered, default_base_model, resolve_model_reference

    # No file and no dataset: the bundled sample, as the page shows when it opens.
    values = visitor_data(dict(csv=file or SAMPLE_CSV, dataset=dataset, dataset_split=dataset_split,
                               dataset_config=dataset_config, dataset_revision=dataset_revision,
                               question_column=question_column, answer_column=answer_column,
                               eval_fraction=eval_fraction, seed=seed, max_length=max_length, strip_html=strip_html,
                               overlong=overlong, answer_lists=answer_lists))
    config = build_config(TuneConfig, {k: v for k, v in values.items() if v is not None})
    config.validate()
    base, _ = _resolve_remembered(resolve_model_reference(base_model or default_base_model(), "base model"))
    # Every GPT-2 size shares the bundled tokenizer; the context is the chosen model's own.
    data, report = measure(config, model_context(base, bool(allow_pickle)), _tokenizer())
    lengths = {key: getattr(report, key) for key in LENGTH_VIEWS.values()}
    lengths["effective_max_length"] = report.max_length  # what auto chose: the histogram colours by it
    max_length = report.max_length
    has_rejected = len(data.rejected) > 0
    outputs = (
        _stats_html(data.report, report),
        _summary_markdown(data.report, report),
        length_histogram(lengths, "whole example", max_length),
        # copies: a head() may be a view that keeps the whole table alive with the page's outputs
        data.frame[["question", "answer"]].head(PREVIEW_ROWS).copy(),  # a list answer shows its first, as trained
        data.rejected.head(500).copy(),
        gr.Accordion(label=f"Rejected rows ({len(data.rejected):,})", open=False),
        gr.DownloadButton(value=_write_rejected(data) if has_rejected else None, visible=has_rejected),
        lengths,
    )
    del data, report  # the page keeps only what it shows; the table and the report's work go back to the OS
    release_freed_memory()
    return outputs


def clear_preview():
    """No file, no summary: nothing on the page may describe a file that is gone."""
    import pandas as pd

    no_columns = gr.Dropdown(choices=[], value=None)
    return (no_columns, no_columns, gr.Group(visible=False), _empty_stats(), "", length_histogram({}, "", 0),
            pd.DataFrame(columns=["question", "answer"]), pd.DataFrame(), gr.Accordion(label="Rejected rows"),
            gr.DownloadButton(value=None, visible=False), {})


def length_histogram(lengths: dict, view: str, max_length):
    """Counts per exact length (a few hundred rows however big the file), binned by the plot."""
    import numpy as np
    import pandas as pd

    values = np.asarray(lengths.get(LENGTH_VIEWS.get(view, "token_lengths"), []), dtype=int)
    if values.size == 0:
        return gr.BarPlot(value=None)
    max_length = int(max_length or 0) or int(lengths.get("effective_max_length") or 0)  # 0 = auto
    counts = pd.Series(values).value_counts().sort_index()
    # only whole examples are truncated at max_length; a question or answer alone is not
    over = (counts.index > int(max_length)) & (view == "whole example")
    frame = pd.DataFrame({
        "tokens": counts.index.astype(int),
        "examples": counts.to_numpy(),
        "fits": np.where(over, "truncated", "fits"),
    })
    caption = (f"{int(counts[over].sum()):,} of {values.size:,} examples longer than max_length={int(max_length)} "
               "(orange: truncated in training)" if view == "whole example" else f"{view} lengths, {values.size:,} examples")
    # the caption changes with the colours present, which makes the plot redraw them
    return gr.BarPlot(value=frame, x_bin=_nice_bin_width(int(values.max()), HISTOGRAM_BINS), caption=caption)


def _nice_bin_width(largest: int, bins: int) -> int:
    raw = max(1, largest / bins)
    for width in (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 250, 500, 1000):
        if width >= raw:
            return width
    return int(raw) + 1


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from gpt2tune.model import load_tokenizer

    return load_tokenizer(str(TOKENIZER_DIR))  # bundled: every GPT-2 size shares this tokenizer


def _write_rejected(data) -> str:
    from gpt2tune.data.load import write_rejected_csv

    root = work_dir() / "downloads"
    folder = root / uuid.uuid4().hex[:12]  # one per preview: two visitors' files never collide
    folder.mkdir(parents=True, exist_ok=True)
    path = write_rejected_csv(data, folder)
    _prune_downloads(root, KEEP_DOWNLOADS)
    return path


def _prune_downloads(root, keep: int) -> None:
    """Keep the newest `keep` download folders. Gradio copies a returned file into its own cache as the
    handler returns, so older folders are no longer served from here; without this they pile up."""
    import shutil

    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=mtime, reverse=True)
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)


# --- rendering -----------------------------------------------------------------------------------
def _stats_html(data_report, report) -> str:
    dropped = data_report.rows_read - data_report.rows_kept
    tiles = [
        stat_tile("Rows kept", f"{data_report.rows_kept:,}", f"of {data_report.rows_read:,} read"),
        stat_tile("Dropped", f"{dropped:,}", f"{data_report.dropped_empty:,} empty, {data_report.dropped_duplicates:,} duplicate",
              "warn" if dropped else ""),
        stat_tile("Train / eval", f"{report.train_rows:,} / {report.eval_rows:,}",
              f"{report.leakage_count:,} eval questions also in train" if report.eval_rows else "no eval split",
              "warn" if report.leakage_count else ""),
        stat_tile("Longer than max length", f"{report.over_max_length:,}",
              f"max_length {report.max_length}{' (auto)' if report.length.auto else ''}: "
              f"{100 * report.length.coverage:.1f}% fit whole; auto: {report.suggested_max_length}",
              "warn" if report.over_max_length else "good"),
        stat_tile("Duplicate rows", f"{report.exact_duplicates:,} exact",
              f"{report.normalised_duplicates:,} rows ignoring case/punctuation; "
              f"{report.duplicates.repeated_questions:,} distinct questions repeated",
              "warn" if report.normalised_duplicates else ""),
    ]
    return f'<div class="stat-grid">{"".join(tiles)}</div>'


def _empty_stats() -> str:
    return '<div class="stat-grid placeholder">Preview a file to see its summary.</div>'


def _summary_markdown(data_report, report) -> str:
    lines = [f"**{data_report.source}** · {data_report.file_format}, {data_report.encoding} · "
             f"question ← `{data_report.question_column}`, answer ← `{data_report.answer_column}`", ""]
    lines += [f"- {line.strip()}" for line in report.summary().splitlines() if not line.startswith("  e.g.")]
    if data_report.conflicting_questions or data_report.question_equals_answer:
        lines.append(f"- kept but worth a look: {data_report.conflicting_questions:,} distinct questions with "
                     f"different answers, {data_report.question_equals_answer:,} rows with an answer equal to "
                     "their question")
    lines += [f"- ⚠️ {warning}" for warning in data_report.warnings]
    return "\n".join(lines)
