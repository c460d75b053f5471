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

EVAL_PROGRESS_EVERY_S = 15.0  # a long evaluation (a large eval split on a CPU) says how far it is


class ProgressCallback(TrainerCallback):
    def __init__(self, on_event: EventSink, eval_progress_every_s: float | None = None):
        self.on_event = on_event
        self.start_time = None
        self.start_step = 0
        self.start_tokens = 0
        self.eval_progress_every_s = EVAL_PROGRESS_EVERY_S if eval_progress_every_s is None else eval_progress_every_s
        self.eval_batches = 0
        self.eval_started = None
        self.eval_reported = None

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

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        """Called after each eval batch: a status line every `eval_progress_every_s` seconds, so
        an evaluation of thousands of rows shows it is moving (short ones stay silent)."""
        now = time.perf_counter()
        if self.eval_started is None:
            self.eval_started = self.eval_reported = now
        self.eval_batches += 1
        if not state.is_world_process_zero or now - self.eval_reported < self.eval_progress_every_s:
            return
        self.eval_reported = now
        try:
            total = len(eval_dataloader)
        except TypeError:  # no length (an iterable dataset): count only
            total = None
        done = f"{self.eval_batches:,}/{total:,} batches ({100 * self.eval_batches / total:.0f}%)" if total \
            else f"{self.eval_batches:,} batches"
        elapsed = now - self.eval_started
        eta = f", about {elapsed / self.eval_batches * (total - self.eval_batches):.0f} s left" if total else ""
        self.on_event(events.Status(f"evaluating at step {state.global_step}: {done} in {elapsed:.0f} s{eta}"))

    def on_evaluate(self, args, state, control, **kwargs):
        self.eval_batches, self.eval_started, self.eval_reported = 0, None, None

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
    """Cooperative stop: checked at every step boundary, so the model is never mid-update. Asked for
    (`should_stop`), or when this start or resume has trained `max_minutes` (0 = no limit): the run
    then ends as a stopped one, with its model and a checkpoint saved, and can be resumed."""

    def __init__(self, should_stop: Callable[[], bool], max_minutes: float = 0.0, on_event: EventSink | None = None):
        self.should_stop = should_stop
        self.max_minutes = max_minutes
        self.on_event = on_event
        self.deadline = None
        self.stopped_at = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.deadline = time.monotonic() + 60 * self.max_minutes if self.max_minutes else None

    def on_step_end(self, args, state, control, **kwargs):
        timed_out = self.deadline is not None and time.monotonic() >= self.deadline
        if self.should_stop() or timed_out:
            if timed_out and self.stopped_at is None and self.on_event and state.is_world_process_zero:
                self.on_event(events.Status(f"time limit of {self.max_minutes:g} minutes (max_minutes) reached: "
                                            f"stopped at step {state.global_step}; the model and a checkpoint are "
                                            "saved and Resume continues"))
            self.stopped_at = state.global_step
            control.should_training_stop = True
        return control
