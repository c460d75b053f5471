"""Answer questions with a (fine-tuned) GPT-2, using the training prompt template.

Greedy or sampled, whole or streamed; the KV cache is on (transformers' default), so each new
token costs one forward step over one position.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator

from gpt2tune.config import GenerationSettings
from gpt2tune.data.prompt import format_prompt


class ModelCache:
    """Keep the last few loaded models, so a UI doesn't reload weights on every question.

    A lock per cache serialises generation: concurrent requests queue rather than racing on one
    model (and on the CPU threads it would use anyway).
    """

    def __init__(self, capacity: int = 2):
        self.capacity = capacity
        self.models: OrderedDict[str, tuple] = OrderedDict()
        self.lock = threading.RLock()

    def get(self, name_or_path: str, allow_pickle: bool = False):
        from gpt2tune.model import load_model_and_tokenizer

        with self.lock:
            if name_or_path not in self.models:
                model, tokenizer = load_model_and_tokenizer(name_or_path, allow_pickle=allow_pickle)
                self.models[name_or_path] = (model.eval(), tokenizer)
                while len(self.models) > self.capacity:
                    self.models.popitem(last=False)
            self.models.move_to_end(name_or_path)
            return self.models[name_or_path]

    def forget(self, name_or_path: str) -> None:
        with self.lock:
            self.models.pop(name_or_path, None)


_shared: list[ModelCache] = []
_shared_lock = threading.Lock()


def shared_cache() -> ModelCache:
    """The process's one model cache: the app's tabs and `compare_answers` asking for the same model
    share its weights instead of loading it twice."""
    with _shared_lock:
        if not _shared:
            _shared.append(ModelCache(capacity=3))
        return _shared[0]


def _generate_kwargs(model, tokenizer, question: str, settings: GenerationSettings) -> dict:
    settings.validate()
    if not question or not question.strip():
        raise ValueError("the question is empty: type a question to answer")
    # Special-token text in the question stays text, as it was in training (prep.encode_text).
    encoded = tokenizer(format_prompt(question), return_tensors="pt", split_special_tokens=True).to(model.device)
    context, used = model.config.n_positions, encoded["input_ids"].shape[1]
    room = context - used
    if room < 1:
        # the limit in tokens and in the words a reader counts (English averages ~0.75 words a token)
        limit = context - (used - len(tokenizer(question, split_special_tokens=True)["input_ids"])) - 1
        raise ValueError(f"the question is too long: {used:,} tokens with the prompt, and the model reads at most "
                         f"{context:,}; shorten it to under {limit:,} tokens (about {int(limit * 0.75):,} words) "
                         "to leave room for the answer")
    return dict(**encoded, **decoding_kwargs(tokenizer, settings, max_new_tokens=min(settings.max_new_tokens, room)))


def decoding_kwargs(tokenizer, settings: GenerationSettings, max_new_tokens: int) -> dict:
    """`model.generate` arguments for these settings (seeding torch first when a seed is set)."""
    import torch

    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        repetition_penalty=settings.repetition_penalty,
        do_sample=settings.do_sample,
    )
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or None)
    else:
        # Don't let a checkpoint's generation_config sneak sampling flags into greedy decoding.
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def answer(model, tokenizer, question: str, settings: GenerationSettings | None = None) -> str:
    """The model's answer to one question: new tokens only, stopped at EOS, stripped."""
    import torch

    kwargs = _generate_kwargs(model, tokenizer, question, settings or GenerationSettings())
    with torch.inference_mode():
        output = model.generate(**kwargs)
    new_tokens = output[0, kwargs["input_ids"].shape[1]:]
    return tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def _token_streamer(base):
    """transformers' streamers hold text back until a space (whole words); a page showing an answer
    as it grows wants every token, except the first bytes of a character not yet complete."""

    class TokenStreamer(base):
        def put(self, value):
            if len(value.shape) > 1:
                value = value[0]
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            self.token_cache.extend(value.tolist())
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            if text.endswith("\ufffd"):  # part of a multi-byte character: wait for the rest
                return
            self.on_finalized_text(text[self.print_len:])
            self.print_len = len(text)

    return TokenStreamer


def stream_answer(model, tokenizer, question: str, settings: GenerationSettings | None = None) -> Iterator[str]:
    """Yield the answer so far, growing token by token, as the model produces it."""
    import torch
    from transformers import TextIteratorStreamer

    kwargs = _generate_kwargs(model, tokenizer, question, settings or GenerationSettings())
    streamer = _token_streamer(TextIteratorStreamer)(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                                     timeout=120)
    errors = []

    def run():
        try:
            with torch.inference_mode():
                model.generate(**kwargs, streamer=streamer)
        except Exception as error:  # surfaced in the caller's thread below
            errors.append(error)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    text = ""
    for piece in streamer:
        text += piece
        yield text.strip()
    worker.join()
    if errors:
        raise errors[0]
