"""One training run at a time per server, run as a child process that outlives the request which started it.

The app's Start and Resume hand a TuneConfig to `TrainingRunner.start` and return. The run is the
CLI's: `python -m gpt2tune train` with the run's settings as flags (`training.child`), in a process
of its own, which writes everything about itself into its run folder (`gpt2tune.runs.record`). Pages
draw a run from that folder (`gpt2tune.runs.view`), so closing or reloading the page, opening a
second one, or restarting the server neither stops nor loses what the run was doing; a crash, a
hung step or the memory of a run stays in the child and never reaches the server.

The runner only knows what the folder can't yet say: that a run is queued (before the child wrote
its record) or stopping (until its last step ends). Stop is the CLI's Ctrl-C (SIGINT: stop at the
end of the step, save the model and a checkpoint); a child that has not ended STOP_GRACE_S after it
is killed (SIGKILL). A child that ends without closing its record (killed, crashed) leaves its run
`failed`, with the reason.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from gpt2tune.config import TuneConfig
from gpt2tune.runs import record
from gpt2tune.training.child import child_environment, error_line, train_command

log = logging.getLogger(__name__)

AUTO_RESUME_ENV = "GPT2TUNE_AUTO_RESUME"  # "1": on start-up, resume the latest interrupted run
STOP_GRACE_S = float(os.environ.get("GPT2TUNE_STOP_GRACE_S", 120))  # a step plus saving the model, at most
POLL_S = 0.25  # how often the folder is looked at for news while a child runs
ERRORS_KEPT = 32  # early failures remembered (runs that failed before writing a record)
STDERR_LINES = 20  # the child's last stderr lines kept, to name why it failed


class TrainingRunner:
    """Owns at most one training child; `start` refuses a second job while one is active."""

    def __init__(self, stop_grace_s: float | None = None):
        self._changed = threading.Condition()
        self._version = 0
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None
        self._live: str | None = None  # queued / running / stopping while the child runs
        self._stop_asked: float | None = None  # when Stop was pressed (monotonic clock)
        self._stop_sent = False  # the child got its SIGINT
        self._job = 0  # which start the state above belongs to: a child still exiting never clears a newer one's
        self.stop_grace_s = STOP_GRACE_S if stop_grace_s is None else stop_grace_s
        # run folder -> why it failed before it had a record; bounded: a server runs for months
        self.errors: collections.OrderedDict[str, str] = collections.OrderedDict()

    # --- control ----------------------------------------------------------------------------
    def start(self, config: TuneConfig, fallback_to_tiny: bool = False) -> TuneConfig:
        """Start (or resume) the run in `config.output_dir`; the settings it trains with are returned.

        A refused resume is a ValueError here, before anything runs (`record.resume_config` resolves
        and checks the run's own settings, once). A new run's settings are checked by the caller
        before it writes anything into the folder, and by the child (the CLI) as it starts."""
        trains = record.resume_config(config)[0] if config.resume else config
        with self._changed:
            if self._live is not None and self._closed_in_folder():
                self._live = None  # its record says it ended; the child is only exiting
            if self._live is not None:
                raise ValueError(f"run {self._folder.name!r} is {self._live}: stop it, or wait for it to end, "
                                 "before starting another")
            self._folder = Path(config.output_dir)
            self._live, self._stop_asked, self._stop_sent, self._process = record.QUEUED, None, False, None
            self._job += 1
            self.errors.pop(str(self._folder), None)
            self._thread = threading.Thread(target=self._run, args=(train_command(config, fallback_to_tiny),
                                                                    self._folder, self._job, config.resume),
                                            name="gpt2tune-train", daemon=True)
            self._thread.start()
            self._bump()
        return trains

    def stop(self) -> bool:
        """Ask the run to stop after the current step (it then saves the model and a checkpoint).
        False: nothing runs."""
        with self._changed:
            if self._live not in (record.QUEUED, record.RUNNING):
                return False
            self._live, self._stop_asked = record.STOPPING, time.monotonic()
            self._bump()
        self._signal_stop()
        return True

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # --- reading ----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    @property
    def pid(self) -> int | None:
        """The training child's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def active_run(self) -> Path | None:
        with self._changed:
            return self._folder if self._live else None

    def live_state(self, folder) -> str | None:
        """queued / stopping for the run this server is training, when the folder can't say it yet."""
        with self._changed:
            if self._live and self._folder and Path(folder).resolve() == self._folder.resolve():
                return None if self._live == record.RUNNING else self._live
            return None

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until something happened after `version` (or `timeout` seconds); the new version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version, timeout=timeout)
            return self._version

    @property
    def busy(self) -> bool:
        return self.active_run() is not None

    # --- the child --------------------------------------------------------------------------
    def _run(self, argv: list[str], folder: Path, job: int, resume: bool) -> None:
        stderr = collections.deque(maxlen=STDERR_LINES)
        killed = False
        try:
            # its own session: the server's Ctrl-C reaches the child only through the server (it dies with it)
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True, errors="replace",
                                       env=child_environment(), start_new_session=True)
        except OSError as error:
            self._remember_error(folder, f"training could not start: {error.strerror or error}")
            self._finish(job)
            return
        with self._changed:
            if job == self._job:
                self._process = process
        reader = threading.Thread(target=lambda: stderr.extend(line.rstrip() for line in process.stderr),
                                  name="gpt2tune-train-stderr", daemon=True)
        reader.start()
        seen = None
        while process.poll() is None:
            try:
                process.wait(POLL_S)
            except subprocess.TimeoutExpired:
                pass
            news = _folder_news(folder)
            if news != seen:  # the child wrote an event or its record: pages redraw
                seen = news
                if self._on_news(folder, process.pid, job):
                    # the run is closed in its folder: the server may start the next while this child exits
                    self._discard_if_failed_untrained(folder, resume)
                    self._finish(job)
            asked = self._stop_asked if job == self._job else None
            if asked is not None:
                self._signal_stop()
                if time.monotonic() - asked > self.stop_grace_s and process.poll() is None:
                    process.kill()  # SIGKILL: a hung step does not hold the server's one run forever
                    killed = True
        reader.join(5)
        self._close(folder, process.pid, process.returncode, killed, list(stderr), resume)
        self._finish(job)

    def _closed_in_folder(self) -> bool:
        """The current child's record says how its run ended (under self._changed)."""
        process = self._process
        saved = record.read_record(self._folder) if process is not None and self._folder else None
        return bool(saved) and saved.get("pid") == process.pid and saved.get("state") not in record.ALIVE

    def _signal_stop(self) -> None:
        """SIGINT, the CLI's Ctrl-C, once the child has installed its handler (its record names it);
        once only: a second SIGINT is the CLI's 'abort now'."""
        with self._changed:
            process, folder = self._process, self._folder
            if process is None or process.poll() is not None or self._stop_sent:
                return
            saved = record.read_record(folder) if folder else None
            if saved and saved.get("pid") == process.pid:
                process.send_signal(signal.SIGINT)
                self._stop_sent = True

    def _on_news(self, folder: Path, pid: int, job: int) -> bool:
        """Wake the pages; True once the child's record says how the run ended."""
        saved = record.read_record(folder)
        ours = bool(saved) and saved.get("pid") == pid
        with self._changed:
            if job == self._job and self._live == record.QUEUED and ours:
                self._live = record.RUNNING
            self._bump()
        return ours and saved.get("state") not in record.ALIVE

    def _close(self, folder: Path, pid: int, returncode: int, killed: bool, stderr: list[str], resume: bool) -> None:
        """A child that ended without closing its record leaves its run failed, with the reason."""
        if killed:
            message = (f"did not stop within {self.stop_grace_s:g} s of Stop, so it was ended (SIGKILL); "
                       "Resume continues from its last checkpoint")
        elif returncode < 0:
            message = f"the training process was killed ({signal.Signals(-returncode).name})"
        else:
            message = error_line(stderr) or f"the training process exited with code {returncode}"
        saved = record.read_record(folder)
        closed = record.mark_ended(folder, pid, record.FAILED, message)
        if returncode == 0:
            return
        if saved is None:
            self._remember_error(folder, message)  # it failed before it had a record (or left none)
        else:
            if not closed:  # the child recorded why itself
                message = saved.get("message") or message
            self._discard_if_failed_untrained(folder, resume)
        log.warning("training run in %s ended with code %s: %s", folder, returncode, message)

    def _discard_if_failed_untrained(self, folder: Path, resume: bool) -> None:
        """A visitor's new run that failed before its first step leaves no folder; the page still says why."""
        from gpt2tune.visitor import discard_if_untrained

        saved = record.read_record(folder) or {}
        if saved.get("state") == record.FAILED and not resume and discard_if_untrained(folder):
            self._remember_error(folder, saved.get("message") or "failed")

    def _remember_error(self, folder: Path, message: str) -> None:
        with self._changed:
            self.errors[str(folder)] = message
            while len(self.errors) > ERRORS_KEPT:
                self.errors.popitem(last=False)

    def _finish(self, job: int) -> None:
        with self._changed:
            if job == self._job and self._live is not None:
                self._live, self._process, self._stop_asked = None, None, None
            self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()


def _folder_news(folder: Path) -> tuple:
    """What changes when the child writes: its event log's size and its record's mtime."""
    out = []
    for name in (record.EVENTS_FILE, record.RUN_FILE):
        try:
            stat = (folder / name).stat()
            out.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def auto_resume(runner: TrainingRunner | None = None) -> str | None:
    """With GPT2TUNE_AUTO_RESUME=1, resume the latest interrupted run that has a checkpoint; its name."""
    if os.environ.get(AUTO_RESUME_ENV, "").strip().lower() not in ("1", "true", "yes"):
        return None
    from gpt2tune.runs.store import list_runs

    runner = runner or default_runner()
    for run in list_runs():
        if run.state == record.INTERRUPTED and run.resumable:
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
