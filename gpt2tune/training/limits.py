"""How many steps the Trainer is told to take when a run has a `step_limit` (a public app sets one
for its visitors' runs): `epochs=1e9` must not become two billion steps."""

from __future__ import annotations

import math
import os


def trainer_max_steps(config, train_rows: int) -> int:
    """max_steps for the Trainer (-1: from epochs), within `config.step_limit`. The steps that epochs
    amount to are counted as the Trainer counts them (per process: ceil(batches / accumulation) an
    epoch), and only a plan over the limit is cut to it, so a run under the limit trains as asked."""
    if not config.step_limit:
        return config.max_steps or -1
    per_process = math.ceil(train_rows / max(1, int(os.environ.get("WORLD_SIZE", "1"))))
    per_epoch = max(1, math.ceil(math.ceil(per_process / config.batch_size) / config.gradient_accumulation_steps))
    planned = config.max_steps or math.ceil(config.epochs * per_epoch)
    return config.step_limit if planned > config.step_limit else (config.max_steps or -1)
