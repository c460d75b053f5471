"""A run as a page shows it, rebuilt from its folder alone (run.json + events.jsonl).

Every number comes from the event log, so the status line, the tiles and the curve agree, and a
reloaded page or a restarted server draws the same thing as the page that started the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from gpt2tune import events
from gpt2tune.runs import artifacts, record
from gpt2tune.runs.resolved import Resolved, from_record

WARM_UP_LOGS = 1  # the first logged step of a segment includes loading and compiling: not a speed


@dataclass
class RunView:
    name: str
    state: str | None = None  # None: no such run yet
    config: dict = field(default_factory=dict)  # the settings as asked (what the form shows)
    resolved: Resolved | None = None  # what the run made of them (what its summary shows)
    data: dict = field(default_factory=dict)
    step: int = 0
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, eval loss)
    probes: list[dict] = field(default_factory=list)  # {"step", "question", "answer"}
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metrics: dict | None = None
    error: str | None = None
    runtime_s: float = 0.0  # summed over segments
    tokens_per_s: float | None = None
    eta_s: float | None = None
    segments: int = 0
    checkpoint_step: int | None = None  # where a resume would continue
    has_model: bool = False
    created: float = 0.0

    @property
    def active(self) -> bool:
        return self.state in record.ALIVE


def load_view(folder, live_state: str | None = None) -> RunView:
    """`live_state`: what this process knows better than the folder (queued before the record
    exists, stopping while the last step finishes)."""
    folder = Path(folder)
    view = RunView(name=folder.name)
    saved = record.read_record(folder)
    view.state = record.effective_state(saved, folder)
    if saved:
        run = from_record(saved, folder)
        if run is not None:
            view.config, view.resolved = run.settings.to_dict(), run.resolved
        view.data = saved.get("data") or {}
        view.step, view.max_steps = int(saved.get("step") or 0), saved.get("max_steps")
        view.created = float(saved.get("created") or 0)
        if view.state == record.FAILED:
            view.error = saved.get("message") or "failed"
    if live_state == record.QUEUED or (live_state and view.state in (None, *record.ALIVE)):
        view.state = live_state  # queued: the folder still shows the run's previous segment
    _replay(view, record.read_events(folder))
    _add_runtime(view, saved)
    checkpoint = artifacts.latest_checkpoint(folder)
    view.checkpoint_step = int(checkpoint.name.split("-")[-1]) if checkpoint else None
    view.has_model = (folder / artifacts.WEIGHTS_FILE).exists()
    return view


def _replay(view: RunView, log: list[events.Event]) -> None:
    segment: list[events.Progress] = []
    for event in log:
        if isinstance(event, events.State) and event.state == record.RUNNING:
            # a resumed segment redoes the steps after its checkpoint: its points replace the old ones
            view.losses = [p for p in view.losses if p[0] <= event.step]
            view.evals = [p for p in view.evals if p[0] <= event.step]
            view.probes = [p for p in view.probes if p["step"] <= event.step]
            view.segments += 1
            view.metrics, segment = None, []
        elif isinstance(event, events.Progress):
            view.losses.append((event.step, float(event.loss)))
            view.step, view.max_steps, view.epoch, view.loss = event.step, event.max_steps, event.epoch, event.loss
            segment.append(event)
        elif isinstance(event, events.Eval):
            view.evals.append((event.step, float(event.eval_loss)))
        elif isinstance(event, events.Probe):
            view.probes.append({"step": event.step, "question": event.question, "answer": event.answer})
        elif isinstance(event, events.Status):
            view.messages.extend(event.message.splitlines())
        elif isinstance(event, events.Warning):
            view.warnings.append(event.message)
        elif isinstance(event, events.Done):
            view.metrics = event.metrics
            view.step = int(event.metrics.get("global_step", view.step))
    _add_speed(view, segment)


def _add_speed(view: RunView, segment: list[events.Progress]) -> None:
    """Tokens/s and ETA from the current segment's logged steps, after the warm-up one."""
    measured = segment[WARM_UP_LOGS - 1:] if len(segment) > WARM_UP_LOGS else []
    if len(measured) >= 2 and measured[-1].step > measured[0].step and measured[-1].time > measured[0].time:
        first, last = measured[0], measured[-1]
        seconds = last.time - first.time
        if last.tokens_seen is not None and first.tokens_seen is not None:
            view.tokens_per_s = (last.tokens_seen - first.tokens_seen) / seconds
        if view.max_steps:
            view.eta_s = seconds / (last.step - first.step) * max(0, view.max_steps - last.step)
    elif segment:
        view.tokens_per_s = segment[-1].tokens_per_s


def _add_runtime(view: RunView, saved: dict | None) -> None:
    if view.metrics and view.metrics.get("train_runtime") is not None:
        view.runtime_s = float(view.metrics["train_runtime"])
        return
    segments = (saved or {}).get("segments") or []
    total = sum(float(s.get("runtime_s") or 0) for s in segments[:-1])
    if segments:
        last = segments[-1]
        total += (time.time() - last["started"]) if view.active else float(last.get("runtime_s") or 0)
    view.runtime_s = total
