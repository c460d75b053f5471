"""Generate tab: ask the fine-tuned model a question and watch the answer stream in, optionally
next to the base model's answer to the same question."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gradio as gr

from gpt2tune.config import GenerationSettings, TuneConfig
from gpt2tune.ui.common import (
    OTHER_MODEL,
    TRAINED_RUN,
    chosen_model,
    current_caller,
    error_text,
    listen,
    load_model,
    message_line,
    refresh_run_choices,
    resolve_base_model,
    ui_errors,
)
from gpt2tune.ui.fields import build_config, field_component

GENERATE_CONCURRENCY = 2  # the model thread answers one question at a time: a second request waits for it there


@dataclass
class GenerateTab:
    source: gr.Radio  # answer with a trained run or a typed folder / Hub id
    run: gr.Dropdown
    model_id: gr.Textbox


def create_generate_tab(base_model: gr.Textbox, allow_pickle: gr.Checkbox) -> GenerateTab:
    """base_model, allow_pickle: the Checks tab's, for the side-by-side answer and for loading."""
    settings: dict[str, gr.Component] = {}
    with gr.Tab("4 · Generate", id="generate") as tab:
        gr.Markdown(
            "Ask a question. The answer streams in as the model writes it. Compare with the base model "
            "to see what fine-tuning changed.",
            elem_classes="tab-intro",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                question = gr.Textbox(label="Question", lines=3, placeholder="e.g. What is gpt2tune?",
                                      elem_id="question")
                source = gr.Radio([TRAINED_RUN, OTHER_MODEL], value=TRAINED_RUN, label="Answer with")
                run = gr.Dropdown(label="Trained run", choices=[], value=None, allow_custom_value=True,
                                  info="Runs with a saved model, newest first.")
                model_id = gr.Textbox(label="Folder or Hub id", placeholder="user/my-gpt2-faq", visible=False,
                                      info="A Hub id, or a model folder inside the working folder.")
                compare = gr.Checkbox(label="Side by side with the base model (set on the Checks tab)", value=False)
                with gr.Accordion("Decoding", open=False):
                    for f in dataclasses.fields(GenerationSettings):
                        if f.name == "max_new_tokens":
                            settings[f.name] = field_component(GenerationSettings, f.name, gr.Slider, minimum=1,
                                                               maximum=512, step=1)
                        else:
                            settings[f.name] = field_component(GenerationSettings, f.name)
                generate = gr.Button("Generate", variant="primary", elem_id="generate-button")
                message = message_line("generate-message")
            with gr.Column(scale=3):
                with gr.Row(equal_height=True):
                    answer = gr.Textbox(label="Fine-tuned model", lines=10, max_lines=24, elem_id="answer",
                                        buttons=["copy"])
                    base_answer = gr.Textbox(label="Base model", lines=10, max_lines=24, visible=False,
                                             buttons=["copy"])
                nearest = gr.Textbox(label="Nearest training example", lines=3, max_lines=12, elem_id="nearest",
                                     info="The run's training question most similar to this one, its answer and "
                                          "their similarity (0-1): does the answer recite it, or generalise?")

    source.change(lambda choice: (gr.Dropdown(visible=choice == TRAINED_RUN), gr.Textbox(visible=choice == OTHER_MODEL)),
                  inputs=source, outputs=[run, model_id], api_visibility="private", queue=False)
    compare.change(lambda on: gr.Textbox(visible=on), inputs=compare, outputs=base_answer,
                   api_visibility="private", queue=False)
    inputs = dict(question=question, source=source, run=run, model_id=model_id, compare=compare,
                  base_model=base_model, allow_pickle=allow_pickle, **settings)
    with tab:  # the endpoints' hidden buttons belong inside a tab
        # an error goes under the button; the answers on screen stay until the next one streams in
        event = dict(inputs_kwargs=inputs, outputs=[answer, base_answer], message=message,
                     concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="generate")
        lookup = [question, source, run, model_id]
        for trigger, api_name in ((generate.click, "generate"), (question.submit, None)):
            trigger(lambda: "", outputs=nearest, api_visibility="private", queue=False)  # the previous example goes
            # once an answer is there, the training example it is closest to (not after a refusal)
            listen(trigger, generate_answer, api_name=api_name, **event).then(
                nearest_after_answer, inputs=[message, *lookup], outputs=nearest, api_visibility="private")
        # its own endpoint for API clients: /generate keeps its outputs
        gr.Button(visible=False).click(nearest_example, inputs=lookup, outputs=nearest, api_name="nearest")
    tab.select(refresh_run_choices, inputs=run, outputs=run, api_visibility="private", queue=False)
    return GenerateTab(source, run, model_id)


@ui_errors
def generate_answer(question, source=TRAINED_RUN, run=None, model_id=None, compare=False,
                    base_model=TuneConfig.base_model,
                    allow_pickle=False, **settings):
    from gpt2tune.generate import stream_answer

    settings = build_config(GenerationSettings, settings)
    settings.validate()
    model, tokenizer = load_model(chosen_model(source, run, model_id), allow_pickle=bool(allow_pickle),
                                  weights=settings.weights)
    texts = ["", ""]
    for texts[0] in stream_answer(model, tokenizer, question, settings):
        yield texts[0], texts[1]
    if compare:  # after the fine-tuned answer: one model thread answers one question at a time
        base, base_tokenizer = load_model(resolve_base_model(base_model)[0], allow_pickle=bool(allow_pickle),
                                          weights=settings.weights)
        for texts[1] in stream_answer(base, base_tokenizer, question, dataclasses.replace(settings)):
            yield texts[0], texts[1]
    yield texts[0], texts[1]  # an empty answer (EOS first) is an answer too


@ui_errors
def nearest_example(question, source=TRAINED_RUN, run=None, model_id=None, request: gr.Request = None) -> str:
    """The training example nearest to the question, in the same words as `generate --show-nearest`."""
    from gpt2tune.evaluation.nearest_example import describe, run_index
    from gpt2tune.hub.access import check_owner_only

    try:
        check_owner_only(current_caller(request), "showing training examples")
    except ValueError as refused:  # said in the box, where the example would be: not an error of the answer
        return f"none: {refused}"
    return "\n".join(describe(*run_index(chosen_model(source, run, model_id)), question))


def nearest_after_answer(message, question, source=TRAINED_RUN, run=None, model_id=None,
                         request: gr.Request = None):
    """The page's nearest example once Generate has answered: none when it refused (its message line
    says why), and a failure to find one said in the box, where the example would be."""
    if message:
        return gr.skip()
    try:
        return nearest_example(question, source, run, model_id, request=request)
    except Exception as error:  # noqa: BLE001  (the answer stands; only the example is missing)
        return f"none: {error_text(error)}"
