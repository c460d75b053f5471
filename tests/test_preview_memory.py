"""A preview of a large upload in the app holds memory only while it runs (issue: 0.45 GB -> 2.49 GB
during a 49 MB preview, and 2.1 GB kept afterwards). Measured on `python app.py` through the API."""

from __future__ import annotations

import os
import re
import threading
import time

import numpy as np
import pandas as pd
import psutil
import pytest
from app_server import launch_app_process
from conftest import SAMPLE_CSV
from gradio_client import Client, handle_file

WORDS = np.array("the cell water energy system patients study result level pressure signal change years effect "
                 "between during several important measured increase reduce higher lower control".split())
TARGET_BYTES = 44_000_000  # the last 20,000-row chunk brings it to ~49 MB, under the app's 50 MiB upload limit
GiB = 2**30


def _write_large_csv(path, target_bytes: int) -> int:
    """Distinct question/answer rows (numbers keep them apart) until the file reaches target_bytes."""
    rng = np.random.default_rng(0)
    rows, written = 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("question,answer\n")
        while written < target_bytes:
            n = 20_000
            numbers = range(rows, rows + n)
            q = [f"What happens to {' '.join(w)} at {i}?" for w, i in zip(rng.choice(WORDS, (n, 8)), numbers)]
            a = [" ".join(w) + f" ({i})." for w, i in zip(rng.choice(WORDS, (n, 40)), numbers)]
            chunk = pd.DataFrame({"question": q, "answer": a}).to_csv(index=False, header=False)
            handle.write(chunk)
            written += len(chunk)
            rows += n
    return rows


def _rss(process: psutil.Process) -> int:
    return process.memory_info().rss


def _settled_rss(process: psutil.Process, timeout_s: float = 60.0) -> int:
    """The RSS once it has stopped falling (two readings a second apart within 1 MiB): memory is handed
    back after the reply is sent, so a busy machine may need a while; the wait ends on that state."""
    deadline = time.monotonic() + timeout_s
    last = _rss(process)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _rss(process)
        if abs(now - last) < 2**20:
            return now
        last = now
    return last


@pytest.mark.slow
def test_large_preview_gives_its_memory_back(tiny_model_dir, tmp_path):
    big = tmp_path / "big.csv"
    rows = _write_large_csv(big, TARGET_BYTES)
    env = {**os.environ, "GPT2TUNE_HOME": str(tmp_path / "home"), "GPT2TUNE_BASE_MODEL": str(tiny_model_dir)}
    with launch_app_process(env, tmp_path / "app.log") as (url, _):
        server = next(p for p in psutil.Process().children() if "app.py" in " ".join(p.cmdline()))
        client = Client(url, verbose=False)
        client.predict(file=handle_file(str(SAMPLE_CSV)), api_name="/preview")  # warm: imports, tokenizer
        before = _rss(server)

        peak, done = [before], threading.Event()

        def watch():
            while not done.is_set():
                peak.append(_rss(server))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            stats, summary, _, table, _, _ = client.predict(file=handle_file(str(big)), api_name="/preview")
        finally:
            done.set()
            watcher.join()
        after = _settled_rss(server)

    # the preview read and reported the whole file: every row read and kept...
    assert f"Rows kept {rows:,} of {rows:,} read" in " ".join(re.sub(r"<[^>]+>", " ", stats).split())
    assert table["data"][0][0].startswith("What happens to")
    # ...within bounded memory, and gave it back
    print(f"server RSS: before {before / GiB:.2f} GiB, peak {max(peak) / GiB:.2f}, after {after / GiB:.2f}")
    # The peak varies from run to run (0.5-1.1 GiB above the start here, 2.0 GiB before previews were
    # bounded); what must hold is that it stays well under that and is given back afterwards.
    assert max(peak) - before < 1.5 * GiB
    assert after - before < 0.25 * GiB
