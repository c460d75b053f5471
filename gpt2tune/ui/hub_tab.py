"""Hub tab: publish a trained run to the Hugging Face Hub (the model, or a demo Space of it), or load a
model from it for Generate."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from gpt2tune.hub.push import PRIVATE_DEFAULT
from gpt2tune.ui.common import (
    OTHER_MODEL,
    TRAINED_RUN,
    chosen_model,
    current_caller,
    listen,
    load_model,
    message_line,
    oauth_enabled,
    refresh_run_choices,
    resolve_model_reference,
    ui_errors,
)


@dataclass
class HubTab:
    run: gr.Dropdown  # the trained run to publish


def create_hub_tab(allow_pickle: gr.Checkbox, generate_source: gr.Radio, generate_model_id: gr.Textbox) -> HubTab:
    """allow_pickle: the Checks tab's; generate_source, generate_model_id: where a loaded model is
    selected on the Generate tab."""
    with gr.Tab("5 · Hub", id="hub") as tab:
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("### Publish a trained model", elem_classes="section-title")
                run = gr.Dropdown(label="Trained run", choices=[], value=None, allow_custom_value=True)
                repo_id = gr.Textbox(label="Repository", placeholder="your-name/gpt2-faq",
                                     info="user/name or organisation/name on huggingface.co")
                token = gr.Textbox(label="Access token (write)", type="password", placeholder="hf_…",
                                   info="Leave empty to use HF_TOKEN, the Space secret or the cached login: "
                                        "only for the app's owner (signed in). "
                                        "It is used for this upload only and never stored.")
                if oauth_enabled():  # a Space with `hf_oauth: true`: its author signs in to push with its secret
                    gr.LoginButton(size="sm")
                private = gr.Checkbox(label="Private repository", value=PRIVATE_DEFAULT)
                verify = gr.Checkbox(label="Verify after pushing", value=False,
                                     info="Download the model back into a fresh cache and check weights and "
                                          "answers match.")
                merged = gr.Checkbox(label="Merged full weights instead of the LoRA adapter", value=False,
                                     info="For a LoRA run trained with 'Also save merged full weights'.")
                push = gr.Button("Push to the Hub", variant="primary")
                push_message = message_line("push-message")
                push_result = gr.Markdown(elem_classes="summary", label="Push result", show_label=False)
                demo = _demo_section()
            with gr.Column():
                gr.Markdown("### Load a model from the Hub", elem_classes="section-title")
                load_id = gr.Textbox(label="Repository", placeholder="user/name, or gpt2",
                                     info="Downloaded once, then answered with on the Generate tab.")
                load = gr.Button("Load", variant="secondary")
                load_message = message_line("load-message")
                load_result = gr.Markdown(elem_classes="summary", label="Load result", show_label=False)

    with tab:  # the endpoints' hidden buttons belong inside a tab
        listen(push.click, push_run, inputs=[run, repo_id, token, private, verify, merged], outputs=[push_result],
               message=push_message, api_name="push")
        listen(demo.button.click, publish_demo, inputs=[run, demo.space_id, demo.model_repo, token, private,
                                                       demo.nearest], outputs=[demo.result], message=demo.message,
               api_name="publish_demo")
        listen(load.click, load_from_hub, inputs=[load_id, allow_pickle],
               outputs=[load_result, generate_source, generate_model_id], message=load_message, api_name="load")
    tab.select(refresh_run_choices, inputs=run, outputs=run, api_visibility="private", queue=False)
    return HubTab(run)


@dataclass
class DemoSection:
    space_id: gr.Textbox
    model_repo: gr.Textbox
    nearest: gr.Checkbox
    button: gr.Button
    result: gr.Markdown
    message: gr.HTML  # under the button: why publishing failed


def _demo_section() -> DemoSection:
    """A chat Space for the chosen run, published with the token and privacy above (as `gpt2tune demo --push`)."""
    gr.Markdown("### Publish a demo", elem_classes="section-title")
    gr.Markdown("A small chat page for the trained run above, as its own Hugging Face Space: a question box, the "
                "streamed answer, example questions and the run's scores, without the training app. It uses the "
                "token and the Private box above.", elem_classes="tab-intro")
    space_id = gr.Textbox(label="Space", placeholder="your-name/gpt2-faq-demo", info="user/name of the Space to create")
    model_repo = gr.Textbox(label="Model repository (optional)", placeholder="your-name/<run name>",
                            info="Where the Space loads the model from; pushed first (files the Hub already has "
                                 "are not sent again). Empty: the Space's owner and the run's name.")
    nearest = gr.Checkbox(label="Show the nearest training example under each answer", value=False,
                          info="The Space then publishes the run's training questions and answers.")
    button = gr.Button("Publish the demo", variant="primary")
    message = message_line("demo-message")
    result = gr.Markdown(elem_classes="summary", label="Demo result", show_label=False)
    return DemoSection(space_id, model_repo, nearest, button, result, message)


def _publisher(repo_id, token, request) -> tuple[str, str]:
    """(repo id, token) for a publish from this page: the id checked, the caller allowed to publish, and
    the token it may use, all before anything is read (refused visitors stop here)."""
    from gpt2tune.hub.access import check_owner_only, token_for
    from gpt2tune.references import validate_repo_id

    repo_id = validate_repo_id(repo_id)
    caller = current_caller(request)
    check_owner_only(caller, "publishing runs")
    return repo_id, token_for(caller, token)


def _link(url: str) -> str:
    return f"[{html.escape(url)}]({html.escape(url)})"


@ui_errors
def publish_demo(run, space_id, model_repo="", token="", private=PRIVATE_DEFAULT, nearest=False,
                 request: gr.Request = None, progress=gr.Progress()):
    from gpt2tune.demo.publish import push_demo
    from gpt2tune.paths import work_dir

    space_id, token = _publisher(space_id, token, request)
    folder = Path(chosen_model(TRAINED_RUN, run, None))
    progress(0.2, desc=f"Pushing {folder.name}, then its demo to {space_id}…")
    published = push_demo(folder, work_dir() / "demos" / folder.name, space_id, token=token, private=bool(private),
                          model_repo=(model_repo or "").strip() or None, nearest=bool(nearest))
    progress(1.0)
    message = f"✅ Demo Space: {_link(published.space_url)}\n\nModel: {_link(published.model_url)}"
    return message + (f"\n\n⚠️ {html.escape(published.note)}" if published.note else "")


@ui_errors
def push_run(run, repo_id, token="", private=PRIVATE_DEFAULT, verify=False, merged=False, request: gr.Request = None,
             progress=gr.Progress()):
    from gpt2tune.hub.push import push_to_hub
    from gpt2tune.runs.artifacts import MERGED_DIR

    repo_id, token = _publisher(repo_id, token, request)
    folder = chosen_model(TRAINED_RUN, run, None)
    if merged:
        if not (Path(folder) / MERGED_DIR / "model.safetensors").exists():
            raise ValueError(f"run {Path(folder).name!r} has no merged weights: train it with method lora and "
                             "'Also save merged full weights'")
        folder = str(Path(folder) / MERGED_DIR)
    progress(0.2, desc=f"Uploading {Path(folder).name} to {repo_id}…")
    url = push_to_hub(folder, repo_id, token=token, private=bool(private))
    progress(1.0)
    visibility = "private" if private else "public"
    published = f"✅ Published as a {visibility} model: {_link(url)}"
    if not verify:
        return published
    from gpt2tune.hub.roundtrip import verify_roundtrip

    progress(0.6, desc=f"Downloading {repo_id} back to compare…")
    report = verify_roundtrip(folder, repo_id, token=token or None)
    return f"{published}\n\n```\n{report.summary()}\n```"


@ui_errors
def load_from_hub(repo_id, allow_pickle=False, progress=gr.Progress()):
    from gpt2tune.model import parameter_count

    reference = resolve_model_reference(repo_id, "repository")
    progress(0.1, desc=f"Downloading {reference}…")
    model, _ = load_model(reference, allow_pickle=bool(allow_pickle))
    parameters = parameter_count(model)
    message = (f"✅ Loaded `{reference}` ({parameters / 1e6:.1f}M parameters). "
               "It is now selected on the **Generate** tab.")
    return message, gr.Radio(value=OTHER_MODEL), gr.Textbox(value=reference, visible=True)
