"""What a training run says while it runs: one dataclass per kind of event, one serialisation.

The trainer callbacks and `train()` produce these; the CLI printer, the app's runner, and a run's
append-only event log (`events.jsonl` in the run folder) consume them. An event crosses a process
or a restart as one JSON line (`to_json` / `from_json`), so a reloaded page or a restarted server
redraws a run from its log alone.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)  # wall clock, for durations across restarts

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=True)


@dataclass
class Status(Event):
    """A line worth showing: the data summary, the device, what the run decided and why."""

    kind: ClassVar[str] = "status"
    message: str


@dataclass
class Warning(Event):  # noqa: A001  (the event is named for what it carries)
    kind: ClassVar[str] = "warning"
    message: str


@dataclass
class Progress(Event):
    """A logged training step: the loss since the last one, and how fast it goes."""

    kind: ClassVar[str] = "log"
    step: int
    max_steps: int
    epoch: float | None
    loss: float
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    tokens_seen: int | None = None


@dataclass
class Eval(Event):
    kind: ClassVar[str] = "eval"
    step: int
    eval_loss: float
    perplexity: float | None = None
    epoch: float | None = None


@dataclass
class Checkpoint(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass
class Probe(Event):
    """A probe question answered at an eval, to watch the answers change."""

    kind: ClassVar[str] = "probe"
    step: int
    question: str
    answer: str


@dataclass
class Task(Event):
    """Progress of work other than training steps (the eval loss, answering questions): `done` of `total`."""

    kind: ClassVar[str] = "task"
    name: str
    done: int
    total: int


@dataclass
class Done(Event):
    kind: ClassVar[str] = "done"
    metrics: dict
    output_dir: str
    stopped: bool = False


@dataclass
class Settings(Event):
    """The settings a run actually uses, once resolved: detected columns, the base model that was
    loaded, and which data (file, rows, SHA-256). A run folder keeps them so that it can be resumed
    without the page or the flags that started it."""

    kind: ClassVar[str] = "settings"
    config: dict  # the settings as asked (max_length 0 = auto, ids as typed)
    data: dict
    resolved: dict | None = None  # runs.resolved.Resolved: what the run made of them


@dataclass
class State(Event):
    """The run's life: queued, running (from `step`), stopping, stopped, finished, failed, interrupted.
    A `running` state opens a segment; on a resume `step` is the checkpoint it continues from, so
    points logged after it by an earlier, killed segment are replaced by the new ones."""

    kind: ClassVar[str] = "state"
    state: str
    step: int = 0
    message: str = ""


KINDS: dict[str, type[Event]] = {
    cls.kind: cls for cls in (Status, Warning, Progress, Eval, Checkpoint, Probe, Done, Settings, State,
                                Task)
}

EventSink = Callable[[Event], None]


def from_dict(values: dict) -> Event:
    """The event a dict (one line of an event log) describes; unknown keys from newer versions are ignored."""
    cls = KINDS.get(values.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown event kind {values.get('kind')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def from_json(line: str) -> Event:
    return from_dict(json.loads(line))


def ignore(event: Event) -> None:
    """The sink for callers that don't listen."""
