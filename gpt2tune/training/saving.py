"""When checkpoints are written, beyond every `save_steps` steps: by elapsed time, and always at a stop.

A short run (fewer steps than the checkpoint interval) stopped by the user is still resumable, and
a long one killed loses at most `save_minutes` of training.
"""

from __future__ import annotations

import time

from transformers import TrainerCallback


class CheckpointTiming(TrainerCallback):
    """Added after the Trainer's flow callback and the stop callback, so it sees their decisions.

    Every checkpoint and the last step also log the loss: the log history saved in a checkpoint then
    covers every step up to it, which is what the whole run's train_loss is computed from after a
    resume (`gpt2tune.runs.record.totals_over_segments`)."""

    def __init__(self, save_minutes: float):
        self.interval_s = save_minutes * 60 if save_minutes and save_minutes > 0 else None
        self.last_save = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.interval_s is not None and _any_process(args, time.monotonic() - self.last_save >= self.interval_s):
            control.should_save = True
        if control.should_training_stop:
            control.should_save = True  # a stop (the user's, or the last step) leaves a resumable checkpoint
        if control.should_save or control.should_training_stop:
            control.should_log = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()


def _any_process(args, flag: bool) -> bool:
    """The same answer on every process of a distributed run (a checkpoint is a collective step:
    one process saving alone would wait for the others forever); the flag as is otherwise."""
    import torch.distributed as dist

    if args.world_size <= 1 or not dist.is_available() or not dist.is_initialized():
        return flag
    import torch

    value = torch.tensor([int(flag)], device=args.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
