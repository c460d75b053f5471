"""What a run folder says about the data its model saw, so that `eval` can tell a fair test from a
recall test: the training file's SHA-256 and the split of it that was trained on.

A run folder holds its settings and what it resolved from them (read through `runs.resolved.load_run`)
and metrics.json (with the training file's name, rows and SHA-256). A Hub id or a
folder without them has no record: nothing can be compared, and nothing is claimed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpt2tune.data.tables import file_sha256
from gpt2tune.runs import artifacts
from gpt2tune.runs.resolved import SavedRun, load_run


@dataclass
class RunRecord:
    run: SavedRun | None  # None: a Hub id or a folder without a run's record
    metrics: dict = field(default_factory=dict)

    @property
    def folder(self) -> Path | None:
        return self.run.folder if self.run else None

    @property
    def max_length(self) -> int | None:
        """The length the run trained with; None when there is no run, or it asked for auto and never
        resolved it (a length that was set is used as set)."""
        if self.run is None:
            return None
        return self.run.resolved.max_length if self.run.resolved else (self.run.settings.max_length or None)


def run_record(model_name_or_path: str) -> RunRecord:
    run = load_run(model_name_or_path) if Path(model_name_or_path).is_dir() else None
    if run is None:
        return RunRecord(run=None)
    return RunRecord(run=run, metrics=artifacts.read_json(run.folder / artifacts.METRICS_FILE, {}) or {})


def training_split(run: RunRecord):
    """The run's training rows, rebuilt from its file with its columns, seed and eval fraction; None when
    the file is not here or is no longer the one trained on (its SHA-256 changed), or the run never
    resolved its columns."""
    split = run_split(run)
    return None if split is None else split[0]


def run_split(run: RunRecord):
    """(training rows, eval rows) of the run, as `training_split` rebuilds them; None when it cannot."""
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.data.prep import split_frame

    settings, resolved = run.run.settings, run.run.resolved
    csv = settings.csv
    recorded = (run.metrics.get("dataset") or {}).get("sha256")
    if resolved is None or not csv or not Path(csv).is_file() or (recorded and file_sha256(csv) != recorded):
        return None
    data = load_qa_data(csv, resolved.question_column, resolved.answer_column, strip_html=settings.strip_html)
    return split_frame(data.frame, settings.eval_fraction, settings.seed)


def training_overlap(run: RunRecord, csv, frame, result: dict) -> list[str]:
    """Warnings (and, into `result`, the numbers) when `csv` is the run's training file or shares
    questions with the run's training split."""
    from gpt2tune.data.normalise import leakage

    if run.folder is None:
        return []
    warnings = []
    name = Path(csv).name
    dataset = run.metrics.get("dataset") or {}
    same_file = bool(dataset.get("sha256")) and file_sha256(csv) == dataset["sha256"]
    result["training_file"] = same_file
    if same_file:
        warnings.append(f"{name} is the file this model was trained on (same SHA-256 as recorded in the run); "
                        "its training rows measure recall, not generalisation")
    train = training_split(run)
    if train is None:
        warnings.append(f"overlap with the run's training split not checked: its training file "
                        f"({Path(run.run.settings.csv).name}) is not here or has changed")
        return warnings
    overlap = leakage(train["question"], frame["question"])
    result["overlap"] = overlap.to_dict()
    if overlap.leaked_rows:
        warnings.append(f"{overlap.leaked_rows:,} of {overlap.eval_rows:,} rows of {name} ({100 * overlap.share:.1f}%, "
                        f"{overlap.leaked_questions:,} distinct questions) have a question of the run's training "
                        "split: scores on them measure recall, not generalisation")
    return warnings
