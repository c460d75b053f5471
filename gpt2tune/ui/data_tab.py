"""Data tab: pick a question/answer file, map its columns, see what training will make of it."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field

import gradio as gr

from gpt2tune.config import TuneConfig
from gpt2tune.paths import SAMPLE_CSV, TOKENIZER_DIR, mtime, work_dir
from gpt2tune.ui.common import listen, message_line, stat_tile, ui_errors, visitor_data, visitor_file
from gpt2tune.ui.fields import build_config, field_component

# Spreadsheets are accepted so that the loader can say what to do with them (save as CSV).
FILE_TYPES = [".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".xlsx", ".xls"]
PREVIEW_ROWS = 20
HISTOGRAM_BINS = 30
KEEP_DOWNLOADS = 8  # rejected-rows folders kept under downloads/: enough for previews running at once
HUB_FIELDS = {"dataset": "user/name", "dataset_split": "train", "dataset_config": "", "dataset_revision": "main"}
PREVIEW_OUTPUTS = 8  # stats, summary, histogram, table, rejected, its accordion, download, lengths
DATA_OPTIONS = ("strip_html", "overlong", "answer_lists")  # how the data is made into examples: set here, trained so
LENGTH_VIEWS = {"whole example": "token_lengths", "question": "question_lengths", "answer": "answer_lengths"}


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
    message: gr.HTML  # the tab's message line, under the file box
    controls: dict  # the tab's own buttons and boxes, for `connect_data_tab`
    model_inputs: dict = field(default_factory=dict)  # the base model's boxes (Checks tab): the context measured

    def config_inputs(self) -> dict:
        """The TuneConfig settings this tab holds, by field name (`csv` is the file)."""
        return dict(csv=self.file, question_column=self.question_column, answer_column=self.answer_column,
                    eval_fraction=self.eval_fraction, seed=self.seed, max_length=self.max_length, **self.hub,
                    **self.options)

    def preview_inputs(self) -> dict:
        """`preview_data`'s keyword arguments."""
        return dict(file=self.file, question_column=self.question_column, answer_column=self.answer_column,
                    eval_fraction=self.eval_fraction, seed=self.seed, max_length=self.max_length, **self.hub,
                    **self.options, **self.model_inputs)


def create_data_tab() -> DataTab:
    """The tab's layout; `connect_data_tab` wires it once the base model's boxes exist."""
    with gr.Tab("1 · Data", id="data") as page:
        gr.Markdown(
            "Upload a table of **questions and answers** (CSV, TSV, JSON or JSONL), or keep the bundled sample. "
            "Check what will be trained on before spending time on training.",
            elem_classes="tab-intro",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                file = gr.File(value=str(SAMPLE_CSV), label="Question/answer file", file_types=FILE_TYPES, height=140,
                               elem_id="data-file")
                message = message_line("data-message")  # under the file box: what went wrong with it
                sample = gr.Button("Use the sample dataset", size="sm", variant="secondary")
                with gr.Accordion("…or a dataset from the Hugging Face Hub", open=False):
                    hub = {name: field_component(TuneConfig, name, value="", placeholder=hint,
                                                 elem_id=f"hub-{name}") for name, hint in HUB_FIELDS.items()}
                with gr.Group(visible=False, elem_id="column-mapping") as mapping:
                    gr.Markdown("**Which columns hold the questions and the answers?**", elem_classes="group-title")
                    question_column = gr.Dropdown(label="Question column", choices=[], value=None, allow_custom_value=True)
                    answer_column = gr.Dropdown(label="Answer column", choices=[], value=None, allow_custom_value=True)
                    mapping_note = gr.Markdown(elem_id="mapping-note", elem_classes="group-title")
                eval_fraction = field_component(TuneConfig, "eval_fraction", gr.Slider, minimum=0, maximum=0.5, step=0.05)
                seed = field_component(TuneConfig, "seed")
                max_length = field_component(TuneConfig, "max_length", gr.Slider, minimum=0, maximum=1024, step=64)
                with gr.Accordion("Cleaning, long examples, answer lists", open=False):
                    options = {name: field_component(TuneConfig, name) for name in DATA_OPTIONS}
                preview = gr.Button("Preview", variant="primary")
            with gr.Column(scale=5):
                stats = gr.HTML(_empty_stats(), label="Summary tiles")
                summary = gr.Markdown(elem_classes="summary", label="Summary", show_label=False, elem_id="data-summary")
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
    controls = dict(page=page, sample=sample, preview=preview, mapping=mapping, mapping_note=mapping_note, view=view)
    return DataTab(file, question_column, answer_column, eval_fraction, seed, max_length, hub, options,
                   preview_outputs, message, controls)


def connect_data_tab(tab: DataTab, model_inputs: dict, model_events: list) -> None:
    """The tab's events. model_inputs: the base model's boxes (`base_model`, `allow_pickle`), so the
    preview measures against the context of the model the Checks tab names, as `check` and `train` do;
    model_events: the events after which that model has changed (the preview follows)."""
    tab.model_inputs = dict(model_inputs)
    c, message, preview_outputs = tab.controls, tab.message, tab.preview_outputs
    preview_inputs = tab.preview_inputs()
    settings = {name: box for name, box in preview_inputs.items() if name not in ("question_column", "answer_column")}
    opened = [tab.question_column, tab.answer_column, c["mapping"], c["mapping_note"], *preview_outputs]

    with c["page"]:  # the endpoints' hidden buttons belong inside a tab
        # A new file (or Hub dataset): its columns, the best guesses explained, and the preview with them.
        listen(tab.file.upload, open_file, inputs_kwargs=settings, outputs=opened, message=message)
        gr.Button(visible=False).click(ui_errors(inspect_columns), inputs=tab.file,
                                       outputs=[tab.question_column, tab.answer_column, c["mapping"]],
                                       api_name="columns")
        tab.file.clear(clear_preview, outputs=[*opened, message], api_visibility="private", queue=False)
        chosen_sample = c["sample"].click(lambda: str(SAMPLE_CSV), outputs=tab.file, api_visibility="private",
                                          queue=False)
        listen(chosen_sample.then, open_file, inputs_kwargs=settings, outputs=opened, message=message)
        listen(tab.hub["dataset"].submit, open_dataset, inputs_kwargs=settings, outputs=opened, message=message)
        listen(c["preview"].click, preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs,
               message=message, api_name="preview")
        # a new base model may have another context, so the auto length and what fits change with it
        changes = [tab.max_length.release, tab.eval_fraction.release, *(box.change for box in tab.options.values()),
                   *model_events]
        for event in changes:
            listen(event, preview_data, inputs_kwargs=preview_inputs, outputs=preview_outputs, message=message)
        for control in (tab.question_column, tab.answer_column):  # a preview once both columns are chosen
            listen(control.input, remap_columns, inputs_kwargs=preview_inputs,
                   outputs=[c["mapping_note"], *preview_outputs], message=message)
    c["view"].change(length_histogram, inputs=[preview_outputs[-1], c["view"], tab.max_length],
                     outputs=preview_outputs[2], api_visibility="private", queue=False)


# --- handlers ------------------------------------------------------------------------------------
def inspect_columns(file):
    """The column pickers for a file's header, with the likeliest columns chosen (the API's /columns)."""
    header, needs_mapping = _file_columns(file)
    question, answer, _ = guess_columns(header)
    return (*_pickers(header, question, answer), gr.Group(visible=needs_mapping))


def open_file(file=None, **settings):
    """A new file: its column pickers with the best guesses and why, then its preview with them."""
    header, needs_mapping = _file_columns(file)
    question, answer, note = guess_columns(header)
    return (*_pickers(header, question, answer), gr.Group(visible=needs_mapping), note,
            *_preview_when_chosen(file, question, answer, **settings))


def open_dataset(dataset=None, dataset_split=None, dataset_config=None, dataset_revision=None, file=None, **settings):
    """A Hub dataset named: its column pickers and its preview, as `open_file` does for a file."""
    from gpt2tune.data.hub_dataset import read_hub_table

    if not (dataset or "").strip():
        raise ValueError("no Hub dataset: enter its id as user/name")
    asked = dict(dataset=dataset, dataset_split=dataset_split, dataset_config=dataset_config,
                 dataset_revision=dataset_revision)
    hub = visitor_data(asked)
    header = read_hub_table(hub["dataset"], hub["dataset_config"], hub["dataset_split"], hub["dataset_revision"],
                            token=hub["hub_token"], cache_dir=hub["hub_cache_dir"]).header
    question, answer, note = guess_columns(header)
    return (*_pickers(header, question, answer), gr.Group(visible=True), note,
            *_preview_when_chosen(file, question, answer, **asked, **settings))


def remap_columns(question_column=None, answer_column=None, **settings):
    """A column picked by hand: the preview again once both are chosen (and different)."""
    if not question_column or not answer_column:
        missing = "question" if not question_column else "answer"
        return (f"Now choose the **{missing}** column; the preview follows.", *_no_preview())
    if question_column == answer_column:
        return ("Questions and answers must come from two different columns.", *_no_preview())
    return ("", *preview_data(question_column=question_column, answer_column=answer_column, **settings))


def guess_columns(header: list[str]) -> tuple[str | None, str | None, str]:
    """(question, answer, why): a header that names them (`suggest_columns`: "prompt", "Best Answer"),
    else the first columns left, in order, for a file whose headers are in no list (`Frage`, `Antwort`).
    The CLI refuses to guess by position; on the page the guess is shown and can be changed."""
    from gpt2tune.data.load import suggest_columns

    header = [str(name) for name in header]
    question, answer = suggest_columns(header)
    reasons = {}
    for role, chosen in (("question", question), ("answer", answer)):
        if chosen is not None:
            reasons[role] = "its header reads as one"
    left = [name for name in header if name not in (question, answer)]
    if question is None and left:
        question = left.pop(0)
        reasons["question"] = "the first column: no header reads as a question"
    if answer is None and left:
        answer = left.pop(0)
        reasons["answer"] = "the next column: no header reads as an answer"
    if question is None or answer is None:
        return question, answer, "A file needs two columns, one of questions and one of answers."
    note = "; ".join(f"{role} ← `{name}` ({reasons[role]})" for role, name in (("question", question),
                                                                                ("answer", answer)))
    return question, answer, f"Chosen: {note}. Change them above if they are wrong."


def _file_columns(file) -> tuple[list[str], bool]:
    """(the file's columns, whether to ask which is which: not when the header says question, answer)."""
    from gpt2tune.data.load import read_table

    frame, info = read_table(visitor_file(file))
    return list(frame.columns), [c.strip().lower() for c in info["columns_found"]] != ["question", "answer"]


def _pickers(choices: list, question, answer) -> tuple:
    return (gr.Dropdown(choices=choices, value=question if question in choices else None),
            gr.Dropdown(choices=choices, value=answer if answer in choices else None))


def _preview_when_chosen(file, question, answer, **settings) -> tuple:
    if not question or not answer:
        return _no_preview()
    return preview_data(file=file, question_column=question, answer_column=answer, **settings)


def _no_preview() -> tuple:
    return tuple(gr.skip() for _ in range(PREVIEW_OUTPUTS))


@ui_errors
def preview_data(file=None, question_column=None, answer_column=None, eval_fraction=TuneConfig.eval_fraction,
                 seed=TuneConfig.seed, max_length=TuneConfig.max_length, dataset=None, dataset_split=None,
                 dataset_config=None, dataset_revision=None, strip_html=TuneConfig.strip_html,
                 overlong=TuneConfig.overlong, answer_lists=TuneConfig.answer_lists, base_model=None,
                 allow_pickle=False):
    """What training will make of the data: loaded and measured by the function `check` and `train` use
    (`training.prepare.preview_data`), with the same settings and the context of the base model the
    Checks tab names (the app's default when none is)."""
    from gpt2tune.heap import release_freed_memory
    from gpt2tune.model import model_context
    from gpt2tune.training.prepare import preview_data as measure
    from gpt2tune.ui.common import base_model_to_load, default_base_model

    # No file and no dataset: the bundled sample, as the page shows when it opens.
    values = visitor_data(dict(csv=file or SAMPLE_CSV, dataset=dataset, dataset_split=dataset_split,
                               dataset_config=dataset_config, dataset_revision=dataset_revision,
                               question_column=question_column, answer_column=answer_column,
                               eval_fraction=eval_fraction, seed=seed, max_length=max_length, strip_html=strip_html,
                               overlong=overlong, answer_lists=answer_lists))
    config = build_config(TuneConfig, {k: v for k, v in values.items() if v is not None})
    config.validate()
    base, _ = base_model_to_load(base_model or default_base_model())
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
    return (no_columns, no_columns, gr.Group(visible=False), "", _empty_stats(), "", length_histogram({}, "", 0),
            pd.DataFrame(columns=["question", "answer"]), pd.DataFrame(), gr.Accordion(label="Rejected rows"),
            gr.DownloadButton(value=None, visible=False), {}, "")


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
    # Both colours always present (a zero bar for a missing one): the plot keeps the colour scale of
    # its first drawing, so a preview going from all-fit to all-truncated showed no bars at all.
    missing = [kind for kind in ("fits", "truncated") if kind not in set(frame["fits"])]
    frame = pd.concat([frame, pd.DataFrame({"tokens": int(counts.index[0]), "examples": 0, "fits": missing})],
                      ignore_index=True)
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
