"""One background training job per process, that outlives the web request which started it.

The app's Start button hands a TuneConfig to `TrainingRunner.start` and returns; the job runs in a
thread of its own, collecting the trainer's events. Any page (the one that started it, a reloaded
one, another visitor's) reads `snapshot()` to draw the curve so far, so closing the browser tab
neither stops nor loses the run.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field

from gpt2tune import events
from gpt2tune.config import TuneConfig
from gpt2tune.errors import RunFailed, first_line

log = logging.getLogger(__name__)

IDLE, RUNNING, STOPPING, FINISHED, STOPPED, FAILED = "idle", "running", "stopping", "finished", "stopped", "failed"
ACTIVE = (RUNNING, STOPPING)


@dataclass
class RunSnapshot:
    """Everything a UI needs to draw a run; a copy, safe to read while training goes on."""

    status: str = IDLE
    version: int = 0  # bumps on every event: a poller redraws only when it changed
    output_dir: str | None = None
    config: dict | None = None
    started_at: float | None = None
    finished_at: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, eval loss)
    probes: list[dict] = field(default_factory=list)  # {"step", "question", "answer"}
    progress: dict | None = None  # the last "log" event: step, max_steps, epoch, tokens_per_s, eta_s
    messages: list[str] = field(default_factory=list)  # status lines: data summary, device, ...
    warnings: list[str] = field(default_factory=list)
    metrics: dict | None = None
    error: str | None = None  # one line, never a traceback
    stopped: bool = False  # the user stopped it; the model saved is the one at that step

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class TrainingRunner:
    """Owns at most one training thread; `start` refuses a second job while one is active."""

    def __init__(self):
        self._changed = threading.Condition()
        self._state = RunSnapshot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control ----------------------------------------------------------------------------
    def start(self, config: TuneConfig, fallback_to_tiny: bool = False) -> None:
        config.validate()
        with self._changed:
            if self._state.active:
                raise ValueError(
                    f"a training run is already in progress ({self._state.output_dir}); "
                    "wait for it to finish or stop it first"
                )
            self._stop = threading.Event()
            self._state = RunSnapshot(
                status=RUNNING, version=self._state.version + 1, output_dir=str(config.output_dir),
                config=config.to_dict(), started_at=time.time(),
            )
            if config.resume:
                self._state.losses, self._state.evals = _history_before_resume(config.output_dir)
            self._thread = threading.Thread(
                target=self._run, args=(config, fallback_to_tiny, self._stop), name="gpt2tune-train", daemon=True
            )
            self._thread.start()

    def stop(self) -> bool:
        """Ask the job to stop after the current step (it then saves the model). False: nothing runs."""
        with self._changed:
            if self._state.status != RUNNING:
                return False
            self._stop.set()
            self._update(lambda s: setattr(s, "status", STOPPING))
            return True

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # --- reading ----------------------------------------------------------------------------
    def snapshot(self) -> RunSnapshot:
        with self._changed:
            return copy.deepcopy(self._state)

    def wait_for_change(self, version: int, timeout: float) -> RunSnapshot:
        """Block until the state is newer than `version` (or `timeout` seconds), then snapshot it."""
        with self._changed:
            self._changed.wait_for(lambda: self._state.version != version, timeout=timeout)
            return copy.deepcopy(self._state)

    @property
    def busy(self) -> bool:
        with self._changed:
            return self._state.active

    # --- the job ----------------------------------------------------------------------------
    def _run(self, config: TuneConfig, fallback_to_tiny: bool, stop_event: threading.Event) -> None:
        try:
            from gpt2tune.training.train import train  # noqa: I001  (torch and transformers: seconds, so only now)

            result = train(config, on_event=self._on_event, stop_event=stop_event, fallback_to_tiny=fallback_to_tiny)
            final = STOPPED if result.stopped_early else FINISHED
            self._update(lambda s: _finish(s, final, metrics=result.metrics, stopped=result.stopped_early))
        except (ValueError, RunFailed) as error:
            self._fail(first_line(error))
        except Exception as error:  # the UI gets one line; the server log gets the traceback
            log.exception("training run in %s failed", config.output_dir)
            self._fail(f"training failed: {type(error).__name__}: {first_line(error)}")

    def _fail(self, message: str) -> None:
        self._update(lambda s: _finish(s, FAILED, error=message))

    def _on_event(self, event: events.Event) -> None:
        self._update(lambda s: _apply_event(s, event))

    def _update(self, change) -> None:
        with self._changed:
            change(self._state)
            self._state.version += 1
            self._changed.notify_all()


def _apply_event(state: RunSnapshot, event: events.Event) -> None:
    if isinstance(event, events.Progress):
        state.progress = event.to_dict()
        state.losses.append((event.step, float(event.loss)))
    elif isinstance(event, events.Eval):
        state.evals.append((event.step, float(event.eval_loss)))
    elif isinstance(event, events.Probe):
        state.probes.append({"step": event.step, "question": event.question, "answer": event.answer})
    elif isinstance(event, events.Status):
        state.messages.extend(event.message.splitlines())
    elif isinstance(event, events.Warning):
        state.warnings.append(event.message)
    elif isinstance(event, events.Done):
        state.metrics = event.metrics
        state.stopped = event.stopped


def _finish(state: RunSnapshot, status: str, metrics: dict | None = None, error: str | None = None,
            stopped: bool = False) -> None:
    state.status = status
    state.finished_at = time.time()
    state.stopped = stopped or state.stopped
    if metrics is not None:
        state.metrics = metrics
    state.error = error


def _history_before_resume(output_dir) -> tuple[list, list]:
    """The curve up to the checkpoint a resumed run continues from, so the plot starts where it left off."""
    from gpt2tune.runs.store import checkpoint_history

    history = checkpoint_history(output_dir)
    losses = [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h]
    evals = [(int(h["step"]), float(h["eval_loss"])) for h in history if "eval_loss" in h]
    return losses, evals


_default_runner: TrainingRunner | None = None
_default_lock = threading.Lock()


def default_runner() -> TrainingRunner:
    """The process-wide runner: however many app instances a process builds, one job at a time."""
    global _default_runner
    with _default_lock:
        if _default_runner is None:
            _default_runner = TrainingRunner()
        return _default_runner
