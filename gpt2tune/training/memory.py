"""Training memory, estimated before training, for full fine-tuning and for LoRA side by side.

Full fine-tuning keeps, per parameter, the float32 weight, its gradient and AdamW's two moments
(16 bytes). LoRA keeps only the frozen float32 weight (4 bytes) for the base model, plus those 16
bytes for each adapter parameter. Activations are the same estimate for both (`oom.activation_bytes`:
the backward pass through frozen layers still needs them), plus, for LoRA, the adapters' own: each
adapted layer keeps its dropped-out input (when lora_dropout > 0) and the r values A produces.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpt2tune.training.oom import GB, activation_bytes, device_memory_bytes, training_state_bytes


@dataclass
class MethodMemory:
    method: str  # "full" or "lora"
    trainable: int  # parameters that get gradients and optimizer state
    weights: int  # bytes
    gradients_and_optimizer: int  # bytes
    activations: int  # bytes, one micro-batch
    fits: bool | None  # within 90% of the device's memory (None: unknown)

    @property
    def total(self) -> int:
        return self.weights + self.gradients_and_optimizer + self.activations


@dataclass
class MemoryEstimate:
    device: str
    available: int | None  # bytes the device has (GPU memory, or RAM for the CPU)
    batch_size: int
    max_length: int
    parameters: int
    methods: list[MethodMemory]

    def summary(self) -> str:
        have = f"{self.available / GB:.1f} GB" if self.available else "unknown memory"
        lines = [f"batch size {self.batch_size} × {self.max_length} tokens on {self.device} ({have}):"]
        for m in self.methods:
            verdict = {True: "fits", False: "does NOT fit", None: "?"}[m.fits]
            lines.append(
                f"{m.method:>4}: ~{m.total / GB:.2f} GB ({verdict}) = weights {m.weights / GB:.2f} + gradients and "
                f"optimizer {m.gradients_and_optimizer / GB:.2f} + activations {m.activations / GB:.2f}; "
                f"trains {m.trainable:,} of {self.parameters:,} parameters"
            )
        return "\n".join(lines)


def estimate(config, max_length: int, model, device: str, precision: str,
             available: int | None = None) -> MemoryEstimate:
    """Both methods for this model and batch (LoRA with the config's rank, targets and dropout), for rows of
    `max_length` tokens: the length the run resolved, never the config's 0 (auto)."""
    from gpt2tune.training.adapters import lora_parameter_count, targeted_modules

    n = sum(p.numel() for p in model.parameters())
    bytes_per_value = 2 if precision in ("bf16", "fp16") else 4
    available = available if available is not None else device_memory_bytes(device)
    activations = activation_bytes(model.config, config.batch_size, max_length, bytes_per_value)
    tokens = config.batch_size * max_length
    adapted = targeted_modules(model, config.lora_target_modules)
    kept_per_token = sum((_in_features(module) if config.lora_dropout > 0 else 0) + config.lora_r
                         for _, module in adapted)
    lora_trainable = lora_parameter_count(model, config.lora_r, config.lora_target_modules)
    # training_state_bytes: 16 bytes per trained parameter, 4 of them its weight
    methods = [
        MethodMemory("full", n, 4 * n, training_state_bytes(n) - 4 * n, activations, None),
        MethodMemory("lora", lora_trainable, 4 * (n + lora_trainable),
                     training_state_bytes(lora_trainable) - 4 * lora_trainable,
                     activations + tokens * kept_per_token * bytes_per_value, None),
    ]
    for m in methods:
        m.fits = None if not available else m.total <= 0.9 * available
    return MemoryEstimate(device, available, config.batch_size, max_length, n, methods)


def _in_features(module) -> int:
    from transformers.pytorch_utils import Conv1D

    return module.weight.shape[0] if isinstance(module, Conv1D) else module.in_features
