"""The app's training run is the CLI's: `python -m gpt2tune train` with the run's settings as flags.

The command line is built from TuneConfig's fields, as the CLI's flags are (`cli.add_dataclass_flags`),
so parsing it gives back the same TuneConfig. The child runs the same code as the server (this
package's folder leads its PYTHONPATH) and dies with the server (`die_with_parent`): a run never
goes on training unseen once the server that shows it is gone; its folder then reads `interrupted`, and
auto-resume continues it, as it did when runs were threads of the server.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

from gpt2tune.config import TuneConfig

PARENT_ENV = "GPT2TUNE_PARENT_PID"  # set for a child: the server's pid, which it dies with


def train_command(config: TuneConfig, fallback_to_tiny: bool = False) -> list[str]:
    """`python -m gpt2tune train --flag=value ...` for exactly this TuneConfig."""
    argv = [sys.executable, "-m", "gpt2tune", "train"]
    for f in dataclasses.fields(TuneConfig):
        value = getattr(config, f.name)
        flag = "--" + f.name.replace("_", "-")
        if value is None:
            continue  # None is each such field's default: left out, it stays None
        if f.name == "torch_compile" and isinstance(value, bool):  # configs saved before "auto"
            value = "on" if value else "off"
        if f.name == "probe_questions":
            argv += [f"--probe-question={question}" for question in value]
        elif isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            argv += [flag, *map(str, value)] if value else []
        else:
            argv.append(f"{flag}={value}")  # one argument: a value starting with '-' is not read as a flag
    if fallback_to_tiny:
        argv.append("--offline-fallback")
    return argv


def error_line(stderr_lines) -> str:
    """The CLI's own one-line error ("error: ..."), without its prefix; "" when the child printed none
    (it crashed, or was killed)."""
    for line in reversed(list(stderr_lines)):
        if line.startswith("error: "):
            return line.removeprefix("error: ").rstrip()
    return ""


def child_environment() -> dict:
    """The server's environment, with this package first on the path and the server's pid."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
            PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}


def die_with_parent() -> None:
    """In a child started by the app: be killed when the server dies (Linux: PR_SET_PDEATHSIG), and
    exit at once if it died before this ran. Elsewhere, or outside the app, nothing."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the server was gone before the line above took effect
        os._exit(1)
