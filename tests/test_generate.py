"""Generation from a model folder: template, EOS stop, greedy determinism, streaming.

The tiny untrained model is enough (and needs no training): what is checked is how answers are
decoded, not what they say."""

import pytest

from gpt2tune.config import GenerationSettings
from gpt2tune.generate import ModelCache, answer, stream_answer


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return ModelCache().get(str(tiny_model_dir))


def test_greedy_answer_is_the_continuation_of_the_prompt(loaded):
    import torch

    from gpt2tune.data.prompt import format_prompt

    model, tokenizer = loaded
    settings = GenerationSettings(max_new_tokens=16)
    first = answer(model, tokenizer, "What is gpt2tune?", settings)
    # By hand: the templated prompt, greedy, the same penalty; only the new tokens, decoded.
    encoded = tokenizer(format_prompt("What is gpt2tune?"), return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=16, repetition_penalty=1.1,
                             pad_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    assert first == tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert first == answer(model, tokenizer, "What is gpt2tune?", settings)


def test_stream_grows_and_ends_at_the_full_answer(loaded):
    model, tokenizer = loaded
    settings = GenerationSettings(max_new_tokens=12, repetition_penalty=1.0)
    parts = list(stream_answer(model, tokenizer, "How do I resume training?", settings))
    assert len(parts) >= 2
    assert all(parts[i + 1].startswith(parts[i][: len(parts[i]) - 1]) for i in range(len(parts) - 1))
    assert parts[-1] == answer(model, tokenizer, "How do I resume training?", settings)


def test_sampling_with_seed_is_reproducible_and_really_samples(loaded):
    """The same seed gives the same answer; another seed, or greedy decoding, another one. The untrained
    model spreads its probability over the whole vocabulary, so ten sampled tokens match greedy's (or
    another seed's) with a chance of about (1/50)^10 even within top_k 50: a match means sampling was ignored."""
    import dataclasses

    model, tokenizer = loaded
    question = "Why pack examples?"
    settings = GenerationSettings(max_new_tokens=10, do_sample=True, temperature=1.0, seed=7, repetition_penalty=1.0)
    sampled = answer(model, tokenizer, question, settings)
    assert sampled == answer(model, tokenizer, question, settings)
    assert sampled != answer(model, tokenizer, question, dataclasses.replace(settings, seed=8))
    assert sampled != answer(model, tokenizer, question, dataclasses.replace(settings, do_sample=False))


def test_stops_at_eos(loaded):
    """A model whose next token is always EOS must return an empty answer at once."""

    model, tokenizer = loaded
    bias = model.lm_head.weight.new_zeros(model.config.vocab_size)
    bias[tokenizer.eos_token_id] = 1e4
    handle = model.lm_head.register_forward_hook(lambda m, i, out: out + bias)
    try:
        assert answer(model, tokenizer, "Anything?", GenerationSettings(max_new_tokens=20)) == ""
    finally:
        handle.remove()


def test_empty_question_is_refused(loaded):
    model, tokenizer = loaded
    with pytest.raises(ValueError, match="question is empty"):
        answer(model, tokenizer, "   ")


def test_loading_and_answering_run_on_one_thread_not_the_callers(tiny_model_dir, monkeypatch):
    """One thread loads and runs every model (`gpt2tune.model_thread`): a thread per streamed answer
    gives each its own OpenMP team, whose workers then sleep between kernels (bench/RESULTS.md)."""
    import threading

    import gpt2tune.model

    threads = []
    load = gpt2tune.model.load_model_and_tokenizer
    monkeypatch.setattr(gpt2tune.model, "load_model_and_tokenizer",
                        lambda *a, **k: threads.append(threading.get_ident()) or load(*a, **k))
    model, tokenizer = ModelCache().get(str(tiny_model_dir))
    hook = model.register_forward_pre_hook(lambda *a: threads.append(threading.get_ident()))
    try:
        settings = GenerationSettings(max_new_tokens=3)
        answer(model, tokenizer, "Where?", settings)
        list(stream_answer(model, tokenizer, "Where?", settings))
        list(stream_answer(model, tokenizer, "When?", settings))
    finally:
        hook.remove()
    assert len(threads) > 3 and len(set(threads)) == 1 and threads[0] != threading.get_ident()


def test_an_answer_no_one_reads_stops_at_its_next_token(loaded):
    import threading

    from gpt2tune import model_thread

    model, tokenizer = loaded
    steps, closed = [], threading.Event()

    def step(*_):  # however fast the model runs ahead, its fourth step waits until the reader has gone
        steps.append(1)
        if len(steps) == 4:
            closed.wait(60)

    no_eos = model.lm_head.weight.new_zeros(model.config.vocab_size)
    no_eos[tokenizer.eos_token_id] = -1e4  # the answer would run to max_new_tokens
    hooks = [model.register_forward_pre_hook(step), model.lm_head.register_forward_hook(lambda m, i, out: out + no_eos)]
    try:
        stream = stream_answer(model, tokenizer, "Tell me everything?", GenerationSettings(max_new_tokens=200))
        next(stream)
        stream.close()
        closed.set()
        model_thread.run(lambda: None)  # jobs run in order: the answer's job has ended
    finally:
        for hook in hooks:
            hook.remove()
    assert len(steps) <= 5  # of the 200 it would have taken


def test_int8_weights_are_loaded_beside_the_full_ones_and_forgotten_with_them(tiny_model_dir):
    import torch

    cache = ModelCache(capacity=3)
    full, _ = cache.get(str(tiny_model_dir))
    light, _ = cache.get(str(tiny_model_dir), weights="int8")
    assert full.get_output_embeddings().weight.dtype == torch.float32
    assert light.get_output_embeddings().weight().dtype == torch.qint8
    assert cache.get(str(tiny_model_dir), weights="int8")[0] is light
    cache.forget(str(tiny_model_dir))
    assert not cache.models
