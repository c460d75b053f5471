"""The whole app: one Blocks with a tab per step, built from the tab modules.

Each `create_*_tab` returns its components as a small dataclass; this module hands them to the tabs
that read them (the Train button reads the Data tab's file and the Checks tab's base model; the Data
tab's preview measures against that base model), so no tab imports another and nothing is shared
through global state.
"""

from __future__ import annotations

import os

import gradio as gr

from gpt2tune.paths import SAMPLE_CSV, ephemeral_storage_note, work_dir
from gpt2tune.ui.checks_tab import create_checks_tab
from gpt2tune.ui.common import on_page, refresh_run_choices
from gpt2tune.ui.data_tab import DataTab, connect_data_tab, create_data_tab, preview_data
from gpt2tune.ui.generate_tab import GenerateTab, create_generate_tab
from gpt2tune.ui.hub_tab import HubTab, create_hub_tab
from gpt2tune.ui.runs_tab import create_runs_tab
from gpt2tune.ui.style import CSS, HEADER, theme
from gpt2tune.ui.train_tab import TrainTab, create_train_tab, follow_training, training_status, visitor_key

MAX_UPLOAD_ENV = "GPT2TUNE_MAX_UPLOAD"  # e.g. "20mb"; Gradio refuses bigger uploads before they land
LOGIN_ENV = "GPT2TUNE_LOGIN"  # "name:password": the app asks for it, and whoever logs in counts as its owner


def build_app() -> gr.Blocks:
    # The first `import transformers` is not thread-safe (two threads importing it at once get
    # "cannot import name ..."), and handlers run in threads: import it once here (under a second).
    import transformers  # noqa: F401

    with gr.Blocks(title="gpt2tune · fine-tune GPT-2 on your Q&A") as demo:
        gr.HTML(HEADER)
        if ephemeral_storage_note():
            gr.Markdown(f"⚠️ {ephemeral_storage_note()}", elem_id="storage-note")
        with gr.Tabs():
            data = create_data_tab()
            checks = create_checks_tab(data_inputs=data.config_inputs())
            connect_data_tab(data, checks.model_inputs(), checks.model_events)
            train = create_train_tab(other_inputs={**data.config_inputs(), **checks.config_inputs()})
            generate = create_generate_tab(base_model=checks.base_model, allow_pickle=checks.allow_pickle)
            hub = create_hub_tab(allow_pickle=checks.allow_pickle, generate_source=generate.source,
                                 generate_model_id=generate.model_id)
            create_runs_tab()
        _on_page_load(demo, data, train, generate, hub)
    return demo


def _on_page_load(demo: gr.Blocks, data: DataTab, train: TrainTab, generate: GenerateTab, hub: HubTab) -> None:
    """A fresh or reloaded page shows the current state: the running (or last) job, the runs."""
    demo.load(follow_training, outputs=train.outputs, api_visibility="private", concurrency_limit=None,
              show_progress="hidden")
    demo.load(visitor_key, inputs=train.visitor_key, outputs=train.visitor_key, api_visibility="private",
              queue=False, show_progress="hidden")
    status = gr.Button(visible=False)  # no button on the page: the endpoint is for API clients
    status.click(training_status, outputs=train.outputs, api_name="status", concurrency_limit=None)
    demo.load(lambda: (refresh_run_choices(), refresh_run_choices()), outputs=[generate.run, hub.run],
              api_visibility="private", show_progress="hidden")
    demo.load(on_page(preview_data, len(data.preview_outputs)), inputs_kwargs=data.preview_inputs(),
              outputs=[*data.preview_outputs, data.message], api_visibility="private")


def launch_options() -> dict:
    """Keyword arguments for `demo.launch`: look, upload limit, and the few files handlers may return."""
    return {
        "theme": theme(),
        "css": CSS,
        "max_file_size": os.environ.get(MAX_UPLOAD_ENV, "50mb"),
        # handlers return the bundled sample and rejected-rows downloads; nothing else is served
        "allowed_paths": [str(SAMPLE_CSV), str(work_dir() / "downloads")],
        "footer_links": ["api", "gradio"],
        # Gradio's own refusals (a path that was not uploaded) reach an API caller as their line, not
        # {"error": null}; every handler of the app already turns its errors into one public line.
        "show_error": True,
        "auth": app_login(),
    }


def app_login() -> list[tuple[str, str]] | None:
    """Gradio's own login from GPT2TUNE_LOGIN, or None (no login: every visitor is anonymous)."""
    value = os.environ.get(LOGIN_ENV, "")
    if not value:
        return None
    name, _, password = value.partition(":")
    if not name.strip() or not password:
        raise ValueError(f"{LOGIN_ENV} must be name:password (both non-empty)")
    return [(name.strip(), password)]
