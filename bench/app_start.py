"""Start-up time of the web app: `python app.py` until its page answers HTTP 200.

    python bench/app_start.py [--repeats 3]

Each start is a fresh process on a free port with a fresh GPT2TUNE_HOME, polled every 50 ms.
Reported for the environment as it is and with HF_HUB_OFFLINE=1 (no Hub look-up at start).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_to_first_200(extra_env: dict, timeout: float = 120) -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
               "GPT2TUNE_HOME": home, "GRADIO_ANALYTICS_ENABLED": "False", **extra_env}
        start = time.perf_counter()
        app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while time.perf_counter() - start < timeout:
                if app.poll() is not None:
                    raise RuntimeError(f"app.py exited with code {app.returncode} before serving")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                        if response.status == 200:
                            return time.perf_counter() - start
                except OSError:
                    pass
                time.sleep(0.05)
            raise RuntimeError(f"no HTTP 200 within {timeout} s")
        finally:
            app.terminate()
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = {}
    for label, env in (("as is", {}), ("HF_HUB_OFFLINE=1", {"HF_HUB_OFFLINE": "1"})):
        times = [time_to_first_200(env) for _ in range(args.repeats)]
        results[label] = {"median_s": statistics.median(times), "all_s": [round(t, 2) for t in times]}
        print(f"{label}: first HTTP 200 after {statistics.median(times):.2f} s (median of {args.repeats}: "
              f"{', '.join(f'{t:.2f}' for t in times)})", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
