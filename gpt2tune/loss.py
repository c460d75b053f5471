"""The training and eval loss computed on the labelled positions only.

With the loss on answers only, most positions of a packed row (questions, padding) carry the label
-100. The model's own loss still projects every position through the 50,257-way LM head and then
throws those logits away; for small models that projection is most of a step. Here the model's
forward keeps only the hidden states whose (shifted) label counts (`logits_to_keep` with a boolean
mask, transformers >= 5), so the LM head runs on those positions alone, and the cross-entropy is
taken in chunks of rows so its float32 copy of the logits stays bounded.

The forward still goes through the model object the Trainer holds (DDP wrapper, compiled module),
so gradient synchronisation and compilation work as before. The result is normalised exactly like
the Trainer's own loss (`Trainer.compute_loss` with `num_items_in_batch`): the same numbers, less work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100
CHUNK_ROWS = 1024  # positions per cross-entropy chunk: 1,024 x 50,257 float32 logits = 206 MB


def shifted_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep, targets): position t predicts label t+1, as in transformers' ForCausalLMLoss.
    `keep` is a (batch, width) boolean mask of positions with a real target, `targets` those targets."""
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = shifted != IGNORE_INDEX
    return keep, shifted[keep]


def chunked_cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor,
                              chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """Sum of the cross-entropies of (positions, vocab) logits, in float32 like the model's loss.
    Past one chunk, each chunk's float32 log-softmax is recomputed in the backward pass instead of
    kept, so memory grows with the logits alone, not with their float32 copies."""
    if logits.shape[0] <= chunk_rows:
        return _cross_entropy_sum(logits, targets)
    total = logits.new_zeros((), dtype=torch.float32)
    for start in range(0, logits.shape[0], chunk_rows):
        part = slice(start, start + chunk_rows)
        total = total + checkpoint(_cross_entropy_sum, logits[part], targets[part], use_reentrant=False)
    return total


def _cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def labelled_loss(model, inputs: dict, num_items_in_batch=None, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """The causal-LM loss of `inputs` (with "labels") through `model`, the LM head applied only
    where a label counts. Divided by `num_items_in_batch` when the Trainer gives it (the labelled
    positions of the whole accumulated batch, across processes), else the mean over this batch."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    keep, targets = shifted_targets(labels)
    # use_cache=False: training keeps no KV cache; the mask makes the logits (kept positions, vocab)
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    total = chunked_cross_entropy_sum(logits, targets.to(logits.device), chunk_rows)
    if num_items_in_batch is None:
        # the model's mean over no labelled position is NaN; a batch of questions only teaches nothing
        return total / targets.numel() if targets.numel() else total * 0.0
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch
