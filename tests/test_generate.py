"""Generation from a fine-tuned folder: template, EOS stop, greedy determinism, streaming."""

import pytest

from gpt2tune.config import GenerationSettings
from gpt2tune.generate import ModelCache, answer, stream_answer


@pytest.fixture(scope="module")
def loaded(trained_run):
    result, _, _ = trained_run
    return ModelCache().get(str(result.output_dir))


def test_greedy_answer_is_text_and_deterministic(loaded):
    model, tokenizer = loaded
    settings = GenerationSettings(max_new_tokens=16)
    first = answer(model, tokenizer, "What is gpt2tune?", settings)
    assert isinstance(first, str)
    assert "Question:" not in first  # only the answer comes back, not the prompt
    assert first == answer(model, tokenizer, "What is gpt2tune?", settings)


def test_stream_grows_and_ends_at_the_full_answer(loaded):
    model, tokenizer = loaded
    settings = GenerationSettings(max_new_tokens=12, repetition_penalty=1.0)
    parts = list(stream_answer(model, tokenizer, "How do I resume training?", settings))
    assert len(parts) >= 2
    assert all(parts[i + 1].startswith(parts[i][: len(parts[i]) - 1]) for i in range(len(parts) - 1))
    assert parts[-1] == answer(model, tokenizer, "How do I resume training?", settings)


def test_sampling_with_seed_is_reproducible(loaded):
    model, tokenizer = loaded
    settings = GenerationSettings(max_new_tokens=10, do_sample=True, temperature=1.0, seed=7)
    assert answer(model, tokenizer, "Why pack examples?", settings) == answer(
        model, tokenizer, "Why pack examples?", settings
    )


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


@pytest.mark.parametrize(
    "settings, message",
    [
        (GenerationSettings(temperature=0), "temperature"),
        (GenerationSettings(top_p=1.5), "top_p"),
        (GenerationSettings(max_new_tokens=0), "max_new_tokens"),
    ],
)
def test_bad_settings_are_named(loaded, settings, message):
    model, tokenizer = loaded
    with pytest.raises(ValueError, match=message):
        answer(model, tokenizer, "Hi?", settings)


def test_empty_question_is_refused(loaded):
    model, tokenizer = loaded
    with pytest.raises(ValueError, match="question is empty"):
        answer(model, tokenizer, "   ")
