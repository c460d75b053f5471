"""Lighter weight formats for answering questions on a CPU, where decoding is bound by memory.

Generating one token reads every weight once: GPT-2 124M in fp32 is ~500 MB per token, which is what
bounds CPU decoding (~25 ms/token). Two formats read less:
  - "bf16": half the bytes, computed with the CPU's bf16 instructions (AVX512-BF16 or AMX);
  - "int8": a quarter of the bytes for the Linear layers, weight-only ("dynamic") quantisation with
    torch.ao: weights int8 per output channel, activations quantised on the fly, int32 accumulation.
GPT-2's attention and MLP layers are transformers' `Conv1D` (x @ W + b with W stored in x out), which
torch.ao does not know: they become `nn.Linear` with the transposed weight first. The LM head is tied
to the token embedding; for int8 it gets its own quantised copy (the embedding stays as it was).

These formats are for generation only (never for training or saving), and they change the numbers:
bench/generate_speed.py measures speed and greedy-answer agreement with fp32 (bench/RESULTS.md).
"""

from __future__ import annotations

import copy
import warnings

from gpt2tune.config import WEIGHT_FORMATS


def for_generation(model, weights: str = "fp32", inplace: bool = False):
    """`model` (a GPT-2 on the CPU) with its weights in `weights` format, for `generate` only."""
    import torch

    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)} (got {weights!r})")
    if weights == "fp32":
        return model
    if model.device.type != "cpu":
        raise ValueError(f"weights={weights} is a CPU format; the model is on {model.device.type}")
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    if weights == "bf16":
        return model.to(torch.bfloat16)
    return _int8_weights(model)


def _int8_weights(model):
    import torch
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                setattr(parent, name, _as_linear(child))
    head = model.get_output_embeddings()
    if head is not None:  # untie: the quantised head must not replace the embedding the input reads
        untied = nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
        untied.weight = nn.Parameter(head.weight.detach().clone(), requires_grad=False)
        if head.bias is not None:
            untied.bias = nn.Parameter(head.bias.detach().clone(), requires_grad=False)
        model.set_output_embeddings(untied)
        model.config.tie_word_embeddings = False
    with warnings.catch_warnings():
        # torch.ao's quantised tensors carry a deprecation notice (the torchao package is their successor);
        # they still work in this torch, and the notice is not something a user can act on.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        # per output channel: one scale per row keeps rows with small weights from losing their precision
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def _as_linear(conv):
    from torch import nn

    linear = nn.Linear(conv.weight.shape[0], conv.nf, bias=True)
    linear.weight = nn.Parameter(conv.weight.detach().t().contiguous(), requires_grad=False)
    linear.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
    return linear


def use_static_cache(model) -> bool:
    """On CUDA, decode with a static KV cache: fixed shapes let transformers compile the forward pass
    (it does so by itself for a static cache on CUDA) and replay it as CUDA graphs, instead of launching
    every small kernel of a 124M model from Python. Elsewhere nothing changes. True when set."""
    if model.device.type != "cuda":
        return False
    model.generation_config.cache_implementation = "static"
    return True
