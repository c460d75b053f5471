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
