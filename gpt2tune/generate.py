"""Answer questions with a (fine-tuned) GPT-2, using the training prompt template.

Greedy or sampled, whole or streamed; the KV cache is on (transformers' default), so each new
token costs one forward step over one position.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator

from gpt2tune import model_thread
from gpt2tune.config import GenerationSettings
from gpt2tune.data.prompt import format_prompt


class ModelCache:
    """Keep the last few loaded models, so a UI doesn't reload weights on every question.

    Loading, like answering, runs on the model thread (`gpt2tune.model_thread`): one thread loads and
    runs every model, so concurrent requests queue rather than racing on the same CPU cores.
    """

    def __init__(self, capacity: int = 2):
        self.capacity = capacity
        self.models: OrderedDict[tuple[str, str], tuple] = OrderedDict()
        self.lock = threading.RLock()

    def get(self, name_or_path: str, allow_pickle: bool = False, weights: str = "fp32"):
        """(model, tokenizer) with its weights in `weights` format (`config.WEIGHT_FORMATS`)."""
        key = (name_or_path, weights)
        with self.lock:
            if key not in self.models:
                self.models[key] = model_thread.run(_load_for_answers, name_or_path, allow_pickle, weights)
                while len(self.models) > self.capacity:
                    self.models.popitem(last=False)
            self.models.move_to_end(key)
            return self.models[key]

    def forget(self, name_or_path: str) -> None:
        with self.lock:
            for key in [key for key in self.models if key[0] == name_or_path]:
                del self.models[key]


def _load_for_answers(name_or_path: str, allow_pickle: bool, weights: str):
    from gpt2tune.generation_weights import for_generation
    from gpt2tune.model import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(name_or_path, allow_pickle=allow_pickle)
    return for_generation(model.eval(), weights, inplace=True), tokenizer


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

    def run():
        with torch.inference_mode():
            return model.generate(**kwargs)

    output = model_thread.run(run)
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
    """Yield the answer so far, growing token by token, as the model produces it on the model thread.
    An answer no one reads any more (the generator closed: a page left, Ctrl-C) stops at its next token."""
    import torch
    from transformers import StoppingCriteriaList, TextIteratorStreamer

    kwargs = _generate_kwargs(model, tokenizer, question, settings or GenerationSettings())
    streamer = _token_streamer(TextIteratorStreamer)(tokenizer, skip_prompt=True, skip_special_tokens=True)
    abandoned = threading.Event()

    def run():
        try:
            with torch.inference_mode():
                model.generate(**kwargs, streamer=streamer, stopping_criteria=StoppingCriteriaList([_when(abandoned)]))
        except BaseException:
            streamer.end()  # the reader below is never left waiting; it raises the error after
            raise

    job = model_thread.submit(run)
    text = ""
    try:
        for piece in streamer:
            text += piece
            yield text.strip()
    finally:
        abandoned.set()
    job.result()  # the job's error, if it failed


def _when(event: threading.Event):
    """A transformers stopping criterion: stop every sequence once `event` is set."""
    import torch
    from transformers import StoppingCriteria

    class WhenSet(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return WhenSet()
