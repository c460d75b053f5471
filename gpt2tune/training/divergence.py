"""A run whose loss turns NaN or infinite has diverged: stop it, save nothing, say what to change.

The Trainer by default hides non-finite step losses from its logs (it logs the window's average
instead) and goes on to evaluate, checkpoint and save NaN weights as if all were well. Training
sets `logging_nan_inf_filter=False` so a NaN reaches the log, and this callback stops at the first
non-finite logged training or eval loss, before that step's eval or checkpoint is written.
`train()` then raises `TrainingDiverged`, so no final model, card or metrics are written and an
earlier run's model in the same folder stays as it was.
"""

from __future__ import annotations

import math

from transformers import TrainerCallback

from gpt2tune.errors import RunFailed

LOSS_KEYS = ("loss", "eval_loss")


class TrainingDiverged(RunFailed):
    """The loss became NaN or infinite; the message names the step and suggests a lower learning rate."""


def diverged_message(step: int, loss: float, learning_rate: float) -> str:
    rate = f"{learning_rate:g}".replace("e+", "e")  # 1e30, as typed, not 1e+30
    return f"training diverged at step {step} (loss {loss}): try a lower --lr (now {rate})"


class DivergenceCallback(TrainerCallback):
    def __init__(self):
        self.step: int | None = None
        self.loss: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in LOSS_KEYS:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value) and self.step is None:
                self.step, self.loss = state.global_step, value
        if self.step is not None:
            # Logging comes first in the Trainer's step end: this step's eval and checkpoint are skipped.
            control.should_training_stop = True
            control.should_evaluate = False
            control.should_save = False
        return control

    def check(self, learning_rate: float) -> None:
        """Raise TrainingDiverged when a non-finite loss was seen."""
        if self.step is not None:
            raise TrainingDiverged(diverged_message(self.step, self.loss, learning_rate))


def check_final_losses(metrics: dict, step: int, learning_rate: float) -> None:
    """The final train/eval losses must be finite too (the last eval runs after training)."""
    for key in ("train_loss", "eval_loss"):
        value = metrics.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise TrainingDiverged(diverged_message(step, value, learning_rate))
