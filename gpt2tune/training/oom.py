"""Out of memory during training: recognise it, explain it with numbers, and say how to retry smaller.

A bare "CUDA out of memory" tells a user nothing about what to change. Here the failure becomes
one line with an estimate of what the batch needs, what the device has and which flags fit, and
(with `auto_reduce_batch_on_oom`) training retries with half the batch size and twice the
gradient accumulation: the effective batch, the number of steps, the learning-rate schedule and
the data order all stay the same, so the retried run is the run that was asked for, only slower.
"""

from __future__ import annotations

import dataclasses
import gc
import os

GB = 2**30
# Substrings of the RuntimeError texts torch raises when an allocation fails (CUDA/HIP/XPU, Apple
# MPS, host RAM). Newer torch raises torch.OutOfMemoryError for CUDA, older a plain RuntimeError.
OOM_MARKERS = (" out of memory", "MPS backend out of memory", "DefaultCPUAllocator: can't allocate memory")


class OutOfMemory(ValueError):
    """Training ran out of memory; the message says what to change. A ValueError, so the CLI and
    the app show it as one line like any other fixable setting."""


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    try:
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in OOM_MARKERS)


# --- estimate ------------------------------------------------------------------------------------

def activation_bytes(model_config, batch_size: int, seq_len: int, bytes_per_value: int) -> int:
    """Rough activation memory of one GPT-2 training micro-batch (no activation checkpointing).

    Per layer and token, a transformer block keeps about 34·hidden values (16-bit count, Korthikanti
    et al. 2022) plus 5·heads·seq for attention scores; the LM head keeps the logits over the whole
    vocabulary about three times (logits, float32 copy for the loss, its gradient)."""
    tokens = batch_size * seq_len
    hidden, layers = model_config.hidden_size, model_config.num_hidden_layers  # n_embd, n_layer on GPT-2
    heads = model_config.num_attention_heads
    per_layer = tokens * (34 * hidden + 5 * heads * seq_len) * bytes_per_value / 2
    logits = tokens * model_config.vocab_size * 4 * 3
    return int(layers * per_layer + logits)


def training_state_bytes(n_parameters: int) -> int:
    """float32 weights + gradients + AdamW's two moments: 16 bytes per parameter."""
    return 16 * n_parameters


def device_memory_bytes(device: str) -> int | None:
    """What the training device has in total (GPU memory, or the machine's RAM for CPU)."""
    try:
        import torch

        if device == "cuda" and torch.cuda.is_available():
            return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        if device == "mps" and hasattr(torch, "mps"):
            return int(torch.mps.recommended_max_memory())
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None


def suggest_batch(config, max_length: int, model_config, n_parameters: int, bytes_per_value: int,
                  available: int | None) -> tuple[int, int]:
    """The largest halved batch size that should fit in ~90% of the device, and the gradient
    accumulation that keeps the effective batch the same."""
    target = config.batch_size
    budget = None if available is None else 0.9 * available - training_state_bytes(n_parameters)
    while target > 1:
        target //= 2
        if budget is None or activation_bytes(model_config, target, max_length, bytes_per_value) <= budget:
            break
    target = max(1, target)
    accumulation = config.gradient_accumulation_steps * -(-config.batch_size // target)  # ceil division
    return target, accumulation


def explain(config, max_length: int, model_config, n_parameters: int, device: str, precision: str,
            available: int | None = None) -> str:
    """One line: what the batch needs, what the device has, and flags that should fit.
    `max_length`: the length the run resolved (the config's may be 0, auto)."""
    bytes_per_value = 2 if precision in ("bf16", "fp16") else 4
    available = available if available is not None else device_memory_bytes(device)
    needed = activation_bytes(model_config, config.batch_size, max_length, bytes_per_value)
    batch, accumulation = suggest_batch(config, max_length, model_config, n_parameters, bytes_per_value, available)
    where = {"cuda": "this GPU has", "mps": "this Mac's GPU may use"}.get(device, "this machine has")
    have = f"{where} {available / GB:.1f} GB" if available else "the device's memory is unknown"
    fixes = []
    if batch < config.batch_size:
        fixes.append(f"--batch-size {batch} --gradient-accumulation-steps {accumulation}")
    if max_length >= 64:
        fixes.append(f"--max-length {max_length // 2}")
    return (
        f"out of memory on {device}: batch size {config.batch_size} × {max_length} tokens needs "
        f"~{needed / GB:.1f} GB for activations on this {_millions(n_parameters)} model "
        f"(+ ~{training_state_bytes(n_parameters) / GB:.1f} GB for weights, gradients and optimizer state); "
        f"{have}; try {' or '.join(fixes) or 'a smaller model'}"
    )


def _millions(n: int) -> str:
    return f"{n / 1e6:.0f}M" if n >= 10**7 else f"{n / 1e6:.1f}M"


# --- retry policy (the loop that retries is in train.py) ---------------------------------------------------------------------------------------

def halved(config):
    """The same run with half the batch and twice the accumulation, or None at batch size 1."""
    if config.batch_size <= 1:
        return None
    batch = config.batch_size // 2
    accumulation = config.gradient_accumulation_steps * -(-config.batch_size // batch)
    return dataclasses.replace(config, batch_size=batch, gradient_accumulation_steps=accumulation)


def free_memory(device: str) -> None:
    gc.collect()
    try:
        import torch

        if device == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif device == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()
    except (ImportError, RuntimeError):
        pass


def retry_message(message: str, smaller, resume_from) -> str:
    """The warning a retry shows: what ran out, and what the run does now."""
    return (f"{message}. Retrying automatically with batch size {smaller.batch_size} and "
            f"{smaller.gradient_accumulation_steps} gradient accumulation steps (same effective batch)"
            + (f", from {resume_from}" if resume_from else ", from the start"))
