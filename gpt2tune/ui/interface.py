"""The whole app: one Blocks with a tab per step, built from the tab modules.

Tabs hand each other their components through one dict (`elems`), so the Train button can read the
Data tab's file and the Checks tab's base model without global state.
"""

from __future__ import annotations

import os

import gradio as gr

from gpt2tune.paths import SAMPLE_CSV, ephemeral_storage_note, work_dir
from gpt2tune.ui.checks_tab import create_checks_tab
from gpt2tune.ui.data_tab import create_data_tab
from gpt2tune.ui.generate_tab import create_generate_tab
from gpt2tune.ui.hub_tab import create_hub_tab
from gpt2tune.ui.runs_tab import create_runs_tab
from gpt2tune.ui.style import CSS, HEADER, theme
from gpt2tune.ui.train_tab import create_train_tab, follow_training, training_status

MAX_UPLOAD_ENV = "GPT2TUNE_MAX_UPLOAD"  # e.g. "20mb"; Gradio refuses bigger uploads before they land


def build_app() -> gr.Blocks:
    # The first `import transformers` is not thread-safe (two threads importing it at once get
    # "cannot import name ..."), and handlers run in threads: import it once here (under a second).
    import transformers  # noqa: F401

    elems: dict = {}
    with gr.Blocks(title="gpt2tune · fine-tune GPT-2 on your Q&A") as demo:
        gr.HTML(HEADER)
        if ephemeral_storage_note():
            gr.Markdown(f"⚠️ {ephemeral_storage_note()}", elem_id="storage-note")
        with gr.Tabs():
            create_data_tab(elems)
            create_checks_tab(elems)
            create_train_tab(elems)
            create_generate_tab(elems)
            create_hub_tab(elems)
            create_runs_tab(elems)
        _on_page_load(demo, elems)
    return demo


def _on_page_load(demo: gr.Blocks, elems: dict) -> None:
    """A fresh or reloaded page shows the current state: the running (or last) job, the runs."""
    train_outputs = elems["train.outputs"]
    demo.load(follow_training, outputs=train_outputs, api_visibility="private", concurrency_limit=None,
              show_progress="hidden")
    status = gr.Button(visible=False)  # no button on the page: the endpoint is for API clients
    status.click(training_status, outputs=train_outputs, api_name="status", concurrency_limit=None)
    refresh_choices, generate_run = elems["generate.refresh"]
    demo.load(lambda: (refresh_choices(), refresh_choices()), outputs=[generate_run, elems["hub.run"]],
              api_visibility="private", show_progress="hidden")
    preview, preview_inputs, preview_outputs = elems["data.load_events"]
    demo.load(preview, inputs_kwargs=preview_inputs, outputs=preview_outputs, api_visibility="private")


def launch_options() -> dict:
    """Keyword arguments for `demo.launch`: look, upload limit, and the few files handlers may return."""
    return {
        "theme": theme(),
        "css": CSS,
        "max_file_size": os.environ.get(MAX_UPLOAD_ENV, "50mb"),
        # handlers return the bundled sample and rejected-rows downloads; nothing else is served
        "allowed_paths": [str(SAMPLE_CSV), str(work_dir() / "downloads")],
        "footer_links": ["api", "gradio"],
    }
