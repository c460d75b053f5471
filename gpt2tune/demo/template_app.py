"""A chat page for one fine-tuned GPT-2: ask a question, watch the answer stream in.

Written by `gpt2tune demo` (from gpt2tune/demo/template_app.py) into a folder that runs on its own,
on a free CPU Space or with `python app.py`: it needs torch, transformers and gradio (and peft for
LoRA adapters), never gpt2tune. What it answers with comes from demo.json beside it, written from
the training run: the model (a folder here, or its Hub id), the length it was trained with, greedy
decoding, the example questions (from the run's eval split) and the run's summary. `vendored/`
holds gpt2tune's prompt template and, with the nearest training example, its index code, copied as
they are, so the page asks exactly as training taught and looks up as the run does.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import gradio as gr
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from vendored.prompt import format_prompt

HERE = Path(__file__).resolve().parent
SETTINGS = json.loads((HERE / "demo.json").read_text(encoding="utf-8"))
INDEX_PATH = HERE / "nearest_index.npz"


def _where(local: str | None, repo: str | None) -> str:
    """A folder shipped beside this file, else the Hub id it was pushed to."""
    if local and (HERE / local).is_dir():
        return str(HERE / local)
    if repo:
        return repo
    raise SystemExit(f"the model is neither in {HERE / str(local)} nor named by a Hub id in demo.json")


def load_model():
    model_path = _where(SETTINGS["model"], SETTINGS.get("model_repo"))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    base = SETTINGS.get("base_model")
    if base:  # LoRA adapters: the base model first, then the adapters on top
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(_where(base, base)), model_path)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path)
    return model.eval(), tokenizer


MODEL, TOKENIZER = load_model()
LOCK = threading.Lock()  # one answer at a time: they would only share the same CPU cores
NEAREST = None
if SETTINGS.get("nearest") and INDEX_PATH.is_file():
    from vendored.nearest import NearestIndex

    NEAREST = NearestIndex.load(INDEX_PATH)


def stream_answer(question: str):
    """The answer so far, growing as the model writes it: greedy, stopped at <|endoftext|>, and never
    longer in all than the examples the model was trained on."""
    # special-token text in the question stays text, as it was in training
    encoded = TOKENIZER(format_prompt(question), return_tensors="pt", split_special_tokens=True)
    length = SETTINGS["max_length"]
    room = length - encoded["input_ids"].shape[1]
    if room < 1:
        raise ValueError(f"The question is too long: {encoded['input_ids'].shape[1]} tokens, and this model was "
                         f"trained on questions and answers of at most {length} tokens together. Shorten it.")
    streamer = TextIteratorStreamer(TOKENIZER, skip_prompt=True, skip_special_tokens=True, timeout=120)
    pad = TOKENIZER.pad_token_id if TOKENIZER.pad_token_id is not None else TOKENIZER.eos_token_id
    kwargs = dict(**encoded, streamer=streamer, max_new_tokens=min(room, SETTINGS["max_new_tokens"]),
                  eos_token_id=TOKENIZER.eos_token_id, pad_token_id=pad, do_sample=False,
                  repetition_penalty=SETTINGS["repetition_penalty"], temperature=None, top_p=None, top_k=None)

    def run():
        with torch.inference_mode():
            MODEL.generate(**kwargs)

    with LOCK:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text.strip()
        worker.join()


def nearest_message(question: str) -> dict | None:
    """The training example most similar to the question, as a collapsible note under the answer."""
    found = NEAREST.nearest(question) if NEAREST is not None else []
    if not found:
        return None
    match = found[0]
    return {"role": "assistant", "content": f"**Q:** {match.question}\n\n**A:** {match.answer}",
            "metadata": {"title": f"Nearest training example · similarity {match.score:.2f}"}}


def chat(question: str, history: list):
    """The conversation with this question and its answer streaming in; a question the model cannot
    take is answered in the conversation, in one line, where the eye is."""
    question = (question or "").strip()
    if not question:
        yield history, ""
        return
    history = [*(history or []), {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
    try:
        for text in stream_answer(question):
            history[-1] = {"role": "assistant", "content": text}
            yield history, ""
    except ValueError as error:
        history[-1] = {"role": "assistant", "content": f"⚠️ {error}"}
        yield history, question  # kept, to shorten
        return
    note = nearest_message(question)
    if note is not None:
        history.append(note)
    yield history, ""


with gr.Blocks(title=SETTINGS["title"]) as demo:
    gr.Markdown(f"# {SETTINGS['title']}")
    chatbot = gr.Chatbot(label="Answers", height=420, buttons=["copy"])
    with gr.Row():
        question = gr.Textbox(label="Question", placeholder="Ask a question…", scale=5, autofocus=True)
        ask = gr.Button("Ask", variant="primary", scale=1)
    if SETTINGS.get("examples"):
        gr.Examples([[q] for q in SETTINGS["examples"]], inputs=question, label="Example questions (from the "
                    "run's eval split)")
    with gr.Accordion("About this model", open=False):
        gr.Markdown(SETTINGS["summary"])
    ask.click(chat, inputs=[question, chatbot], outputs=[chatbot, question], api_name="chat")
    question.submit(chat, inputs=[question, chatbot], outputs=[chatbot, question], api_visibility="private")


if __name__ == "__main__":
    demo.queue().launch()
