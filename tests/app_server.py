"""Start the app for tests: in this process (`app_url` fixture) or as `python app.py` (`launch_app_process`).

In-process is fast and lets a test patch what the app calls (the Hub upload). A subprocess is for
what must be set before import, such as HF_ENDPOINT, which huggingface_hub reads once at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from net import free_port, http_status

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 240  # python app.py on a busy 2-core machine: imports alone can take a minute


@contextmanager
def app_env(home: Path, base_model: str):
    """GPT2TUNE_HOME and the default base model for the app under test; restored afterwards."""
    values = {"GPT2TUNE_HOME": str(home), "GPT2TUNE_BASE_MODEL": base_model}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def app_url(tiny_model_dir, tmp_path_factory):
    """The app, built and launched in this process on a free 127.0.0.1 port; its URL.

    Per module, so that the environment it sets is restored before other test files run."""
    home = tmp_path_factory.mktemp("gpt2tune-home")
    with app_env(home, str(tiny_model_dir)):
        from gpt2tune.ui import build_app, launch_options

        demo = build_app()
        demo.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_options())
        try:
            yield demo.local_url
        finally:
            from gpt2tune.training.runner import default_runner

            default_runner().stop()
            default_runner().join(timeout=60)
            demo.close()


@contextmanager
def launch_app_process(env: dict, log_path: Path, argv: list[str] | None = None, app_dir: Path = ROOT,
                       python: str = sys.executable):
    """`python app.py` (or `python *argv`) in `app_dir` with `env`; `python`: the interpreter (a venv's).

    Yields (url, seconds until the page answered HTTP 200)."""
    port = free_port()
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen([python, *(argv or ["app.py"])], cwd=app_dir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            while http_status(url) != 200:
                if process.poll() is not None or time.perf_counter() - started > STARTUP_TIMEOUT_S:
                    raise RuntimeError(f"app.py did not serve {url}; log:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.1)
            yield url, time.perf_counter() - started
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
