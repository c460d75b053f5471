"""TrainerCallbacks that turn the Trainer's life into typed events (`gpt2tune.events`), and stop it on request.

A CLI prints the events and a UI plots them without knowing the Trainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import TrainerCallback

from gpt2tune import events
from gpt2tune.evaluation.metrics import perplexity
from gpt2tune.events import EventSink


class ProgressCallback(TrainerCallback):
    def __init__(self, on_event: EventSink):
        self.on_event = on_event
        self.start_time = None
        self.start_step = 0
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        # Measured from here (after resuming), so tokens/s and ETA describe this session's speed.
        self.start_time = time.perf_counter()
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not state.is_world_process_zero:
            return
        if "loss" in logs:
            self.on_event(self._train_event(state, logs))
        if "eval_loss" in logs:
            self.on_event(events.Eval(step=state.global_step, epoch=state.epoch, eval_loss=logs["eval_loss"],
                                      perplexity=perplexity(logs["eval_loss"])))

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = f"{args.output_dir}/checkpoint-{state.global_step}"
            self.on_event(events.Checkpoint(step=state.global_step, path=path))

    def _train_event(self, state, logs) -> events.Progress:
        elapsed = time.perf_counter() - (self.start_time or time.perf_counter())
        steps_done = state.global_step - self.start_step
        tokens = state.num_input_tokens_seen - self.start_tokens
        eta = elapsed / steps_done * (state.max_steps - state.global_step) if steps_done else None
        return events.Progress(
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=state.epoch,
            loss=logs["loss"],
            learning_rate=logs.get("learning_rate"),
            grad_norm=logs.get("grad_norm"),
            tokens_per_s=tokens / elapsed if elapsed > 0 else None,
            eta_s=eta,
            tokens_seen=state.num_input_tokens_seen,
        )


class StopCallback(TrainerCallback):
    """Cooperative stop: checked at every step boundary, so the model is never mid-update."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped_at = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.should_stop():
            self.stopped_at = state.global_step
            control.should_training_stop = True
        return control
