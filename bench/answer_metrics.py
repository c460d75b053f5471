"""How long the memorisation meters take on a large training set: `copy_rate` and
`nearest_training_answer` for 100 generated answers against 5,000 training answers.

    python bench/answer_metrics.py [--training 5000] [--predictions 100] [--repeats 3]

The worst case for their inverted index: common words shared by most answers. Reports the best of
`--repeats` runs (a busy neighbour only ever adds time) with the machine and its load; it asserts
nothing (the tests check what the meters return, not how fast).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt2tune.evaluation.metrics import copy_rate, nearest_training_answer  # noqa: E402

COMMON = ["is", "of", "the", "in", "and", "a"]


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training", type=int, default=5000)
    parser.add_argument("--predictions", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    training = [f"{COMMON[i % 6]} answer{i} {COMMON[(i + 1) % 6]} topic{i % 97} detail{i % 31}"
                for i in range(args.training)]
    predictions = [f"{COMMON[j % 6]} topic{j} {COMMON[(j + 2) % 6]} detail{j}" for j in range(args.predictions)]
    copy_s, nearest_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        copy_rate(predictions, training)
        copy_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for prediction in predictions:
            nearest_training_answer(prediction, training)
        nearest_s.append(time.perf_counter() - start)
    print(json.dumps({"cpu": cpu_model(), "cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
                      "training": args.training, "predictions": args.predictions,
                      "copy_rate_s": round(min(copy_s), 3), "nearest_training_answer_s": round(min(nearest_s), 3)}))


if __name__ == "__main__":
    main()
