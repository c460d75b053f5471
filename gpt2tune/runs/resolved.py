"""What a run resolved from what was asked: the one record of both, and the one way to read it back.

`TuneConfig` is the request: `max_length` 0 means auto, columns and the base model are as typed.
`Resolved` is what `prepare()` made of it: the length used and why (with the coverage counted), the
columns detected, the base model loaded, the split's sizes, device and precision, and, once the
Trainer planned it, the steps and epochs. It is frozen: nothing changes it after preparation.

A run folder keeps both, written once each: run.json holds them from the moment the data is
prepared (`"config"` and `"resolved"`), gpt2tune_config.json (which travels with the model to the
Hub) holds them when the model is saved. `load_run` is the one reader; resume, eval, provenance,
the card, the run view and the app all read a run through it and never guess a missing value.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from gpt2tune.config import TuneConfig
from gpt2tune.data.length import LengthPolicy
from gpt2tune.runs import artifacts

RESOLVED_KEY = "resolved"  # beside the settings, in run.json and in gpt2tune_config.json


@dataclass(frozen=True)
class Resolved:
    length: LengthPolicy  # the length used, auto or set, and how many examples it fits whole
    question_column: str
    answer_column: str
    base_model: str  # what was loaded: the name asked for, a folder, or the offline tiny model
    train_examples: int  # examples trained on (after overlong drops; answer lists expanded)
    eval_examples: int
    truncated_train: int  # examples cut at max_length, without their end-of-text token
    truncated_eval: int
    device: str
    precision: str
    compile: bool
    batch_size: int  # rows per step and device: the setting's, or what an out-of-memory retry halved it to
    gradient_accumulation_steps: int
    max_steps: int | None = None  # optimizer steps the run amounts to (known once the Trainer planned it)
    epochs: float | None = None  # passes over the training set those steps make
    steps_run: int | None = None  # optimizer steps actually taken (fewer on a stop or early stopping)

    @property
    def max_length(self) -> int:
        return self.length.max_length

    def length_line(self) -> str:
        """The length used and its coverage, in the words every view uses (CLI, app, card)."""
        return self.length.summary().splitlines()[0]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # the length policy as its fields

    @classmethod
    def from_dict(cls, values: dict) -> Resolved:
        values = dict(values)
        values["length"] = LengthPolicy(**values["length"])
        return cls(**values)


@dataclass(frozen=True)
class SavedRun:
    folder: Path
    settings: TuneConfig  # as asked (max_length 0 = auto, ids as typed)
    resolved: Resolved | None  # None: the run ended before its data was prepared


def _settings(values: dict) -> TuneConfig:
    # only settings: not the resolved block beside them, nor one this version does not know (a newer one wrote it)
    known = {f.name for f in dataclasses.fields(TuneConfig)}
    return TuneConfig.from_dict({k: v for k, v in values.items() if k in known})


def read_run(config_values: dict | None, resolved_values: dict | None, folder: Path) -> SavedRun | None:
    """A run from the two blocks a run folder keeps (None when there is no settings block)."""
    if not config_values:
        return None
    try:
        resolved = Resolved.from_dict(resolved_values) if resolved_values else None
    except (TypeError, KeyError):  # written by an older gpt2tune: the settings still hold
        resolved = None
    return SavedRun(folder=Path(folder), settings=_settings(config_values), resolved=resolved)


def load_run(folder) -> SavedRun | None:
    """The run in `folder`: its run.json (the run training there now, or the last one), else the
    gpt2tune_config.json saved with its model (all a model folder from the Hub has); None when the
    folder holds neither."""
    folder = Path(folder)
    record = artifacts.read_json(folder / artifacts.RUN_FILE)
    if isinstance(record, dict) and record.get("config"):
        return from_record(record, folder)
    saved = artifacts.read_json(folder / artifacts.CONFIG_FILE)
    if isinstance(saved, dict) and saved:
        return read_run(saved, saved.get(RESOLVED_KEY), folder)  # beside the settings, not one of them
    return None


def from_record(record: dict | None, folder) -> SavedRun | None:
    """The run a run.json already read holds."""
    return read_run((record or {}).get("config"), (record or {}).get(RESOLVED_KEY), folder)


def write_config(path: Path, settings: TuneConfig, resolved: Resolved) -> None:
    """gpt2tune_config.json: the settings as asked and, beside them, what the run resolved."""
    Path(path).write_text(json.dumps({**settings.to_dict(), RESOLVED_KEY: resolved.to_dict()}, indent=2) + "\n")
