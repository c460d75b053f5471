"""Generation in lighter weight formats: the same model, fewer bytes per token, close logits."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from gpt2tune.model import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    return model.eval(), tokenizer


def _logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


@pytest.mark.slow
@pytest.mark.parametrize("weights, tolerance", [("bf16", 0.02), ("int8", 0.05)])
def test_light_formats_keep_the_logits_and_leave_the_model_alone(tiny, weights, tolerance):
    from gpt2tune.generation_weights import for_generation

    model, tokenizer = tiny
    ids = torch.tensor([tokenizer("Question: what is a vaccine?\nAnswer:")["input_ids"]])
    reference = _logits(model, ids)
    light = for_generation(model, weights)
    got = _logits(light, ids)
    # relative to the spread of the logits: small next to it, not zero (the format changed the numbers)
    error = (got - reference).abs() / reference.std()
    assert 0 < error.mean().item() < tolerance and error.max().item() < 5 * tolerance
    assert torch.equal(_logits(model, ids), reference)  # the original model is untouched
    assert light.get_input_embeddings().weight.dtype == (torch.bfloat16 if weights == "bf16" else torch.float32)


@pytest.mark.slow
def test_int8_turns_every_projection_into_a_quantised_linear(tiny):
    from transformers.pytorch_utils import Conv1D

    from gpt2tune.generation_weights import for_generation

    model, _ = tiny
    light = for_generation(model, "int8")
    kinds = [type(m).__name__ for m in light.modules()]
    assert not any(isinstance(m, Conv1D) for m in light.modules())
    # 4 projections per block (qkv, attention out, MLP in, MLP out) + the LM head
    assert kinds.count("Linear") == 4 * model.config.n_layer + 1
    assert light.get_output_embeddings().weight().dtype == torch.qint8
    assert light.get_input_embeddings().weight.dtype == torch.float32


def test_an_unknown_format_is_one_line(tiny):
    from gpt2tune.generation_weights import for_generation

    with pytest.raises(ValueError, match="weights must be one of fp32, int8, bf16"):
        for_generation(tiny[0], "fp8")
