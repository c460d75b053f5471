"""The runs under the working folder: `work_dir()/runs/<name>`, each a `train` output folder.

Read from disk, so a run trained by the CLI, or before the app restarted, shows up too.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from gpt2tune.paths import inside, mtime, work_dir
from gpt2tune.runs import artifacts, record
from gpt2tune.runs.resolved import RESOLVED_KEY, SavedRun, from_record, read_run

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class RunInfo:
    name: str
    path: Path
    saved: SavedRun | None = None  # its settings and what it resolved (None: the folder has no run's record)
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # {"step", "loss"} and {"step", "eval_loss"} points
    has_model: bool = False  # loadable weights or LoRA adapters (written last, so they are complete)
    checkpoints: int = 0
    modified: float = 0.0
    state: str | None = None  # from run.json; a dead process's `running` reads `interrupted`
    step: int = 0
    created: float = 0.0  # when the run was first started (the folder's time for older runs)

    @property
    def resumable(self) -> bool:
        return self.checkpoints > 0


def runs_root() -> Path:
    root = work_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_dir(name: str) -> Path:
    """The folder of run `name`, refusing names that are not plain folder names."""
    name = (name or "").strip()
    if not RUN_NAME_PATTERN.match(name):
        raise ValueError(
            f"run name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return inside(runs_root(), name)


def new_run_name() -> str:
    """A fresh name from the clock: sorts by time and is unique on this machine."""
    base = time.strftime("run-%Y%m%d-%H%M%S")
    name, n = base, 1
    while (runs_root() / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def list_runs() -> list[RunInfo]:
    """Every run folder, newest first."""
    runs = []
    for path in runs_root().iterdir():
        if not (path.is_dir() and RUN_NAME_PATTERN.match(path.name)):
            continue
        try:
            runs.append(load_run(path.name))
        except ValueError:  # deleted between the listing and the read
            continue
    return sorted(runs, key=lambda run: run.modified, reverse=True)


def trained_runs() -> list[RunInfo]:
    return [run for run in list_runs() if run.has_model]


def load_run(name: str) -> RunInfo:
    path = run_dir(name)
    if not path.is_dir():
        raise ValueError(f"no run named {name!r} under {runs_root()}")
    history = artifacts.read_json(path / artifacts.HISTORY_FILE)
    saved = record.read_record(path)
    config = artifacts.read_json(path / artifacts.CONFIG_FILE)  # a model folder copied in has no run.json
    run = from_record(saved, path) or (read_run(config, config.get(RESOLVED_KEY), path)
                                       if isinstance(config, dict) else None)
    checkpoints = list((path / artifacts.CHECKPOINTS_DIR).glob("checkpoint-*"))
    return RunInfo(
        name=path.name,
        path=path,
        saved=run,
        metrics=artifacts.read_json(path / artifacts.METRICS_FILE, {}) or {},
        # a run still training (or killed) has no history file yet; its checkpoints hold one
        history=history if isinstance(history, list) else checkpoint_history(path),
        has_model=artifacts.has_model(path),
        checkpoints=len(checkpoints),
        modified=max((mtime(p) for p in [path, *path.iterdir()]), default=0.0),
        state=record.effective_state(saved, path),
        step=int((saved or {}).get("step") or 0),
        created=float((saved or {}).get("created") or mtime(path)),
    )


def checkpoint_history(output_dir) -> list[dict]:
    """Loss points recorded in the latest complete checkpoint (the Trainer's log history)."""
    checkpoint = artifacts.latest_checkpoint(Path(output_dir))
    if checkpoint is None:
        return []
    state = artifacts.read_json(checkpoint / "trainer_state.json", {}) or {}
    return artifacts.loss_points(state.get("log_history", []))


def overlay_rows(runs: list[RunInfo]) -> list[dict]:
    """Long-format rows {"run", "step", "loss", "split"} to overlay several runs' curves in one plot."""
    rows = []
    for run in runs:
        for entry in run.history:
            for key, split in (("loss", "train"), ("eval_loss", "eval")):
                if key in entry and "step" in entry:
                    rows.append({"run": run.name, "step": int(entry["step"]), "loss": float(entry[key]), "split": split})
    return rows
