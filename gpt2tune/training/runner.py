"""One background training job per process, that outlives the web request which started it.

The app's Start and Resume hand a TuneConfig to `TrainingRunner.start` and return; the job runs in
a thread of its own and writes everything about itself into its run folder (`gpt2tune.runs.record`).
Pages draw a run from that folder (`gpt2tune.runs.view`), so closing or reloading the page, opening
a second one, or restarting the server neither stops nor loses what the run was doing. The runner
only knows what the folder can't yet say: that a run is queued (before its record exists) or
stopping (until its last step ends), and it wakes pages when something changed.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from gpt2tune import events
from gpt2tune.config import TuneConfig

log = logging.getLogger(__name__)

AUTO_RESUME_ENV = "GPT2TUNE_AUTO_RESUME"  # "1": on start-up, resume the latest interrupted run


class TrainingRunner:
    """Owns at most one training thread; `start` refuses a second job while one is active."""

    def __init__(self):
        self._changed = threading.Condition()
        self._version = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self._live: str | None = None  # queued / running / stopping while the thread runs
        self.errors: dict[str, str] = {}  # run folder -> why it failed before it had a record

    # --- control ----------------------------------------------------------------------------
    def start(self, config: TuneConfig, fallback_to_tiny: bool = False) -> None:
        """Start (or resume) the run in `config.output_dir`; a refused resume or bad settings are
        a ValueError here, before anything runs."""
        from gpt2tune.runs.record import resume_config

        config.validate()
        if config.resume:
            resume_config(config)
        with self._changed:
            if self._live is not None:
                raise ValueError(f"run {self._folder.name!r} is {self._live}: stop it, or wait for it to end, "
                                 "before starting another")
            self._stop = threading.Event()
            self._folder = Path(config.output_dir)
            self._live = "queued"
            self.errors.pop(str(self._folder), None)
            self._thread = threading.Thread(
                target=self._run, args=(config, fallback_to_tiny, self._stop), name="gpt2tune-train", daemon=True
            )
            self._thread.start()
            self._bump()

    def stop(self) -> bool:
        """Ask the job to stop after the current step (it then saves the model and a checkpoint).
        False: nothing runs."""
        with self._changed:
            if self._live not in ("queued", "running"):
                return False
            self._stop.set()
            self._live = "stopping"
            self._bump()
            return True

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # --- reading ----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def active_run(self) -> Path | None:
        with self._changed:
            return self._folder if self._live else None

    def live_state(self, folder) -> str | None:
        """queued / stopping for the run this process is training, when the folder can't say it yet."""
        with self._changed:
            if self._live and self._folder and Path(folder).resolve() == self._folder.resolve():
                return None if self._live == "running" else self._live
            return None

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until something happened after `version` (or `timeout` seconds); the new version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version, timeout=timeout)
            return self._version

    @property
    def busy(self) -> bool:
        return self.active_run() is not None

    # --- the job ----------------------------------------------------------------------------
    def _run(self, config: TuneConfig, fallback_to_tiny: bool, stop_event: threading.Event) -> None:
        from gpt2tune.errors import RunFailed, first_line

        try:
            from gpt2tune.training.train import train  # torch and transformers: seconds, so only now

            train(config, on_event=self._on_event, stop_event=stop_event, fallback_to_tiny=fallback_to_tiny)
        except (ValueError, RunFailed) as error:  # the run folder records it; kept here too in case it failed before that
            self.errors[str(config.output_dir)] = first_line(error)
        except Exception as error:  # the page gets one line; the server log gets the traceback
            log.exception("training run in %s failed", config.output_dir)
            self.errors[str(config.output_dir)] = f"training failed: {type(error).__name__}: {first_line(error)}"
        finally:
            if str(config.output_dir) in self.errors and not config.resume:
                from gpt2tune.visitor import discard_if_untrained

                discard_if_untrained(config.output_dir)  # the page still shows why, from `errors`
            with self._changed:
                self._live = None
                self._bump()

    def _on_event(self, event: events.Event) -> None:
        with self._changed:
            if self._live == "queued":
                self._live = "running"
            self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()


def auto_resume(runner: TrainingRunner | None = None) -> str | None:
    """With GPT2TUNE_AUTO_RESUME=1, resume the latest interrupted run that has a checkpoint; its name."""
    if os.environ.get(AUTO_RESUME_ENV, "").strip().lower() not in ("1", "true", "yes"):
        return None
    from gpt2tune.runs.record import INTERRUPTED
    from gpt2tune.runs.store import list_runs

    runner = runner or default_runner()
    for run in list_runs():
        if run.state == INTERRUPTED and run.resumable:
            try:
                runner.start(TuneConfig(output_dir=str(run.path), resume=True))
            except ValueError as error:
                log.warning("auto-resume of %s refused: %s", run.name, error)
                continue
            log.info("auto-resume: resuming interrupted run %s", run.name)
            return run.name
    return None


_default_runner: TrainingRunner | None = None
_default_lock = threading.Lock()


def default_runner() -> TrainingRunner:
    """The process-wide runner: however many app instances a process builds, one job at a time."""
    global _default_runner
    with _default_lock:
        if _default_runner is None:
            _default_runner = TrainingRunner()
        return _default_runner
