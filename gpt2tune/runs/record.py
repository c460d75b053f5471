"""A run folder's own record of itself: `run.json` (settings, data, state, step, heartbeat) and
`events.jsonl` (every event of every segment, append-only).

The folder is the single source of truth about a run: a reloaded page, a second browser, a
restarted server and `gpt2tune train --resume` all read it instead of remembering anything.

run.json:
  config     the TuneConfig as asked (max_length 0 = auto, columns and base model as typed)
  resolved   what the run made of it (runs.resolved.Resolved: length used, columns, model loaded, ...);
             read both back through runs.resolved.load_run
  data       {"file", "rows", "sha256"} of the data trained on; a resume refuses other data
  state      queued / running / stopping / stopped / finished / failed / interrupted
  step, max_steps, heartbeat (wall clock), pid, message (one line, for failed)
  segments   one per start or resume: started, from_step, to_step, last_alive, runtime_s
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from pathlib import Path

from gpt2tune import events
from gpt2tune.config import TuneConfig
from gpt2tune.data.tables import file_sha256
from gpt2tune.runs import artifacts
from gpt2tune.runs.resolved import RESOLVED_KEY, from_record

RUN_FILE = artifacts.RUN_FILE
EVENTS_FILE = "events.jsonl"
DATA_DIR = "data"

QUEUED, RUNNING, STOPPING, STOPPED, FINISHED, FAILED, INTERRUPTED = (
    "queued", "running", "stopping", "stopped", "finished", "failed", "interrupted")
ALIVE = (QUEUED, RUNNING, STOPPING)  # states only a live process may be in
# What a resume may change: how long to train. Everything else is the run's and stays as it was.
MAY_CHANGE_ON_RESUME = ("max_steps", "epochs")
NOT_SETTINGS = ("resume", "output_dir")  # where and how, not what is trained
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0  # no heartbeat for this long: the process that ran it is gone

_live: set[str] = set()  # run folders this process is recording right now
_live_lock = threading.Lock()


# --- reading -------------------------------------------------------------------------------------
def read_record(folder) -> dict | None:
    record = artifacts.read_json(Path(folder) / RUN_FILE)
    return record if isinstance(record, dict) else None


def read_events(folder) -> list[events.Event]:
    """Every event in the log; a line cut short by a kill (the last one) is skipped."""
    path = Path(folder) / EVENTS_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(events.from_json(line))
        except ValueError:
            continue
    return out


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def is_live_here(folder) -> bool:
    with _live_lock:
        return str(Path(folder).resolve()) in _live


def effective_state(record: dict | None, folder) -> str | None:
    """The state as it is now: a run left `running` by a process that died is `interrupted`.

    Died means: its pid is gone, or it is this very process (a restarted server can get the old
    pid back) but not recording it, or its heartbeat stopped (the pid was reused by another process)."""
    if record is None:
        return None
    state = record.get("state")
    if state not in ALIVE:
        return state
    pid = record.get("pid")
    if pid == os.getpid():
        return state if is_live_here(folder) else INTERRUPTED
    stale = time.time() - float(record.get("heartbeat") or 0) > STALE_AFTER_S
    return INTERRUPTED if stale or not pid_alive(pid) else state


def mark_ended(folder, pid: int, state: str, message: str) -> bool:
    """Close a run that process `pid` left alive in the record (it was killed, or crashed before it
    could close it itself): the record says `state` with a one-line `message`, and the log says so too.
    False when the record already said how the run ended, or is another process's."""
    folder = Path(folder)
    saved = read_record(folder)
    if saved is None or saved.get("state") not in ALIVE or saved.get("pid") != pid:
        return False
    saved.update(state=state, message=message, heartbeat=time.time())
    artifacts.write_json(folder / RUN_FILE, saved)
    with open(folder / EVENTS_FILE, "a", encoding="utf-8") as log:
        log.write(events.State(state, step=int(saved.get("step") or 0), message=message).to_json() + "\n")
    return True


def adopt_data(folder: Path, source) -> Path:
    """Copy the data file into the run folder, so a resume never depends on an upload that the web
    server may delete (Gradio's temporary files) or on a file replaced since."""
    source = Path(source)
    target = Path(folder) / DATA_DIR / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.resolve() != target.resolve():
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return target


# --- resuming ------------------------------------------------------------------------------------
def resume_config(config: TuneConfig) -> tuple[TuneConfig, Path]:
    """The config a resume of `config.output_dir` trains with, and the checkpoint it continues from.

    Settings come from the run folder. A value given here is used only where it differs from the
    TuneConfig default (it was asked for) and the run allows it to change (`MAY_CHANGE_ON_RESUME`);
    any other asked-for difference, changed data, a finished run or no checkpoint is one ValueError."""
    folder = Path(config.output_dir)
    name = folder.name
    record = read_record(folder)
    if record is None or not record.get("config"):
        raise ValueError(f"nothing to resume in {name!r}: it holds no run record ({RUN_FILE}); start a new run")
    state = effective_state(record, folder)
    if state in ALIVE:
        raise ValueError(f"run {name!r} is {state} (step {record.get('step', 0)}); stop it before resuming it")
    stored = from_record(record, folder).settings
    defaults = TuneConfig()
    changes = {}
    for f in dataclasses.fields(TuneConfig):
        asked, default, kept = getattr(config, f.name), getattr(defaults, f.name), getattr(stored, f.name)
        if f.name in NOT_SETTINGS or asked == default or _same(f.name, asked, kept):
            continue
        if f.name not in MAY_CHANGE_ON_RESUME:
            raise ValueError(f"run {name!r} resumes with its own settings: {f.name} {asked!r} was given but the run "
                             f"has {kept!r} (only {' and '.join(MAY_CHANGE_ON_RESUME)} may change on resume)")
        changes[f.name] = asked
    effective = dataclasses.replace(stored, **changes, csv=_rebased(stored.csv, stored.output_dir, folder),
                                    output_dir=str(folder), resume=True)
    effective.validate()
    step = int(record.get("step") or 0)
    if state == FINISHED and not changes:
        raise ValueError(f"run {name!r} is finished (step {step}): nothing to resume; "
                         "to train it longer, resume with more max steps or epochs")
    if effective.max_steps and effective.max_steps <= step:
        raise ValueError(f"run {name!r} is already at step {step}: max_steps {effective.max_steps} adds no steps")
    _check_data(effective, record, name)
    checkpoint = artifacts.latest_checkpoint(folder)
    if checkpoint is None:
        raise ValueError(f"run {name!r} has no usable checkpoint to resume from (it stopped before writing one); "
                         "start it again as a new run")
    return effective, checkpoint


def _rebased(csv: str, old_folder: str, folder: Path) -> str:
    """The run's own copy of its data follows the run folder when the working folder moved."""
    try:
        return str(folder / Path(csv).relative_to(old_folder))
    except ValueError:
        return csv


def _same(name: str, a, b) -> bool:
    if name in ("csv", "base_model") and isinstance(a, str) and isinstance(b, str) and Path(a).exists():
        return Path(a).resolve() == Path(b).resolve()
    return a == b


def _check_data(config: TuneConfig, record: dict, name: str) -> None:
    data = record.get("data") or {}
    path = Path(config.csv)
    if not path.is_file():
        raise ValueError(f"run {name!r} was trained on {path.name}, which is gone; restore it to resume")
    if data.get("sha256") and file_sha256(path) != data["sha256"]:
        raise ValueError(f"data file {path.name} changed since run {name!r} was trained on it (SHA-256 differs); "
                         "restore the original file to resume, or start a new run on the new data")


# --- totals over segments ------------------------------------------------------------------------
def totals_over_segments(output_dir, log_history: list[dict], metrics: dict) -> dict:
    """train_loss, train_runtime and tokens/s of the whole run, not only of the last segment.

    The Trainer's train_loss averages the steps of this segment only; the log history (kept in
    every checkpoint, and logged at every checkpoint and at the last step) covers every step, so the
    mean over it, weighted by the steps each logged loss averages, is the whole run's."""
    out = {}
    previous = 0
    weighted, covered = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and entry["step"] > previous:
            weighted += entry["loss"] * (entry["step"] - previous)
            covered = previous = entry["step"]
    if covered and covered == metrics.get("global_step"):
        out["train_loss"] = weighted / covered
    record = read_record(output_dir) or {}
    earlier = sum(float(s.get("runtime_s") or 0) for s in (record.get("segments") or [])[:-1])
    segment = metrics.get("train_runtime") or 0.0
    out["segment_runtime"] = segment
    out["train_runtime"] = earlier + segment
    out["segments"] = len(record.get("segments") or []) or 1
    if out["train_runtime"] and metrics.get("train_real_tokens") is not None:
        out["train_real_tokens_per_s"] = metrics["train_real_tokens"] / out["train_runtime"]
    return out


# --- writing -------------------------------------------------------------------------------------
class RunRecorder:
    """The event sink `train()` writes through: each event goes to the log, the record follows the
    run's state and step, then the event goes on to the caller's sink.

    As a context manager it opens a segment (a new run, or a resume checked by `resume_config`),
    keeps a heartbeat while training, and closes the segment as finished, stopped, failed or
    interrupted. Only the main process of a distributed run writes."""

    def __init__(self, config: TuneConfig, sink: events.EventSink = events.ignore):
        self.folder = Path(config.output_dir)
        self.sink = sink
        self.writes = os.environ.get("RANK", "0") == "0"
        self.checkpoint: Path | None = None
        if config.resume:
            config, self.checkpoint = resume_config(config)
        self.config = config
        self.record: dict = {}
        self._lock = threading.Lock()
        self._beating = threading.Event()
        self._done: events.Done | None = None

    # --- segment -----------------------------------------------------------------------------
    def __enter__(self) -> RunRecorder:  # noqa: PYI034  (never subclassed)
        if not self.writes:
            return self
        self._created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"output folder {self.folder} is not writable: {error.strerror or error}") from None
        if self.checkpoint is None:
            self._clear_previous_run()
            self.record = {"name": self.folder.name, "created": time.time(), "config": self.config.to_dict(),
                           "data": None, "segments": [], "step": 0, "max_steps": self.config.max_steps or None}
        else:
            self.record = read_record(self.folder) or {}
            self.record["config"] = {**self.record.get("config", {}),
                                     **{k: getattr(self.config, k) for k in MAY_CHANGE_ON_RESUME}}
        start = int(self.checkpoint.name.split("-")[-1]) if self.checkpoint else 0
        now = time.time()
        self.record.update(state=RUNNING, pid=os.getpid(), heartbeat=now, message="", step=start)
        self.record["segments"] = [*self.record.get("segments", []),
                                   {"started": now, "from_step": start, "to_step": start, "last_alive": now}]
        with _live_lock:
            _live.add(str(self.folder.resolve()))
        self._write()
        self._append(events.State(RUNNING, step=start,
                                  message=f"resumed from {self.checkpoint.name}" if self.checkpoint else "started"))
        threading.Thread(target=self._heartbeat, name="gpt2tune-heartbeat", daemon=True).start()
        return self

    def __exit__(self, kind, error, tb) -> None:
        if not self.writes:
            return
        self._beating.set()
        if error is None:
            state, message = (STOPPED if self._done and self._done.stopped else FINISHED), ""
        elif isinstance(error, (KeyboardInterrupt, SystemExit)):
            state, message = INTERRUPTED, "interrupted"
        else:
            from gpt2tune.errors import RunFailed, first_line

            state, message = FAILED, first_line(error) if isinstance(error, (ValueError, RunFailed)) else (
                f"{type(error).__name__}: {first_line(error)}")
        if self._created and isinstance(error, ValueError) and self.record.get("data") is None:
            # Bad input or settings, found before the run had its data: nothing of it is worth
            # keeping, and a folder it made only to record that would be litter (the error is the answer).
            with _live_lock:
                _live.discard(str(self.folder.resolve()))
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        with self._lock:
            self.record.update(state=state, message=message, heartbeat=time.time())
            self._touch_segment()
            self._write()
            self._append(events.State(state, step=int(self.record.get("step") or 0), message=message))
        # Only now: while this process trains the folder, a "running" record is not read as interrupted.
        with _live_lock:
            _live.discard(str(self.folder.resolve()))

    # --- the sink ----------------------------------------------------------------------------
    def __call__(self, event: events.Event) -> None:
        if self.writes:
            with self._lock:
                self._append(event)
                if isinstance(event, events.Settings):
                    self.record["config"], self.record["data"] = event.config, event.data
                    self.record[RESOLVED_KEY] = event.resolved
                    self._write()
                elif isinstance(event, (events.Progress, events.Checkpoint, events.Eval)):
                    self.record["step"] = max(int(self.record.get("step") or 0), event.step)
                    if isinstance(event, events.Progress):
                        self.record["max_steps"] = event.max_steps
                    self._touch_segment()
                    self._write()
                elif isinstance(event, events.Done):
                    self._done = event
                    segment_runtime = event.metrics.get("segment_runtime")
                    if segment_runtime is not None and self.record.get("segments"):
                        self.record["segments"][-1]["runtime_s"] = segment_runtime
                        self.record["segments"][-1].pop("killed_estimate", None)
                    self.record["step"] = event.metrics.get("global_step", self.record.get("step"))
                    self._write()
        self.sink(event)

    # --- internals ---------------------------------------------------------------------------
    def _clear_previous_run(self) -> None:
        """A new run never continues from what another run left here: its checkpoints and its log
        go (its published model stays until this run publishes its own)."""
        old = sorted((self.folder / artifacts.CHECKPOINTS_DIR).glob("checkpoint-*"))
        shutil.rmtree(self.folder / artifacts.CHECKPOINTS_DIR, ignore_errors=True)
        for name in (RUN_FILE, EVENTS_FILE):
            (self.folder / name).unlink(missing_ok=True)
        if old:
            self.sink(events.Status(f"new run in {self.folder.name}: removed {len(old)} checkpoint(s) of the run "
                                    "that was there before (use --resume to continue a run)"))

    def _touch_segment(self) -> None:
        now = time.time()
        self.record["heartbeat"] = now
        if self.record.get("segments"):
            segment = self.record["segments"][-1]
            segment["to_step"], segment["last_alive"] = int(self.record.get("step") or 0), now
            if "runtime_s" not in segment or segment.get("killed_estimate"):
                # until the Trainer reports it: what a kill would leave as this segment's time
                segment["runtime_s"], segment["killed_estimate"] = now - segment["started"], True

    def _heartbeat(self) -> None:
        while not self._beating.wait(HEARTBEAT_S):
            with self._lock:
                self._touch_segment()
                self._write()

    def _write(self) -> None:
        artifacts.write_json(self.folder / RUN_FILE, self.record)

    def _append(self, event: events.Event) -> None:
        with open(self.folder / EVENTS_FILE, "a", encoding="utf-8") as log:
            log.write(event.to_json() + "\n")
