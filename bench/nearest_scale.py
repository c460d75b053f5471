"""Build and query time, file size and peak memory of the nearest-example index (gpt2tune.data.nearest)
for N synthetic training questions (random words, 5-14 a question, about 60 characters).

    python bench/nearest_scale.py 100000
"""

from __future__ import annotations

import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from gpt2tune.data.nearest import NearestIndex


def main(rows: int) -> None:
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(20_000)]
    questions = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 14))) + "?" for _ in range(rows)]
    started = time.perf_counter()
    index = NearestIndex.build(questions, questions)
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        path = index.save(Path(folder) / "index.npz")
        size = path.stat().st_size
        started = time.perf_counter()
        loaded = NearestIndex.load(path)
        load_s = time.perf_counter() - started
    asked = questions[:100]
    started = time.perf_counter()
    found = sum(loaded.nearest(q)[0].question == q for q in asked)
    query_ms = 1000 * (time.perf_counter() - started) / len(asked)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rows:,} questions: build {built:.1f} s, file {size / 1e6:.0f} MB, load {load_s:.2f} s, "
          f"query {query_ms:.1f} ms, own question found {found}/{len(asked)}, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
