"""Data preparation at scale: load + tokenize + pack a 1,000,000-row CSV, time and peak memory.

    python bench/prep_scale.py [--rows 1000000] [--small-rows 100000] [--folder /tmp/gpt2tune-prep-scale]

Writes synthetic question/answer CSVs (about 75 GPT-2 tokens per example, like real Q&A data) once,
then measures, each in a fresh process so that peak RSS belongs to that run alone:
  small CSV: first preparation (tokenize, pack, write the cache) and a second one (cache hit);
  large CSV: the same two.
Each run is the path `gpt2tune train` takes before training (`training.prepare.prepare` with a run
folder: load and clean, tokenize once for the length policy and the report, split, pack; the token
ids and the packed rows are cached beside the run folder), on a 2-layer model so that the model's own
memory does not hide the data's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_speed import _rss_gib  # noqa: E402  (needs ROOT on the path)

TOPICS = ("the heart", "a river delta", "photosynthesis", "the tax code", "a compiler", "volcanoes", "a bakery",
          "the immune system", "solar panels", "medieval trade", "a hash table", "bird migration", "inflation",
          "the Roman army", "glaciers", "a vaccine trial", "jazz harmony", "a bicycle gear", "coral reefs")
WORDS = ("because", "usually", "energy", "water", "people", "measured", "increase", "reduce", "system", "cells",
         "pressure", "market", "between", "during", "several", "important", "result", "patients", "study",
         "temperature", "process", "structure", "change", "years", "level", "higher", "lower", "control",
         "effect", "groups", "response", "significant", "material", "signal", "network", "surface", "average")


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Synthetic Q&A: a question of ~15 tokens, an answer of ~50, numbers so that rows differ."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    chunk = 100_000
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            topic = rng.choice(TOPICS, n)
            numbers = rng.integers(1, 10_000, (n, 2))
            words = rng.choice(WORDS, (n, 40))
            spans = rng.integers(18, 40, n)
            questions = [f"How does {t} change when the value is {a} instead of {b}?"
                         for t, (a, b) in zip(topic, numbers)]
            answers = [f"When it is {a}, " + " ".join(w[:k]) + f". The difference of {abs(a - b)} matters."
                       for (a, b), w, k in zip(numbers, words, spans)]
            frame = pd.DataFrame({"question": questions, "answer": answers})
            frame.to_csv(handle, index=False, header=start == 0)


def prepare_once(csv: str, cache_dir: str, max_length: int) -> dict:
    """One preparation, exactly as `gpt2tune train` runs it (`training.prepare.prepare` with the run's
    folder, so its caches are used), on a 2-layer model; returns timings and this process's peak RSS."""
    model_dir = Path(cache_dir) / "tiny-model"
    if not model_dir.exists():  # made in another process: building a model is not part of preparing
        subprocess.run([sys.executable, "-c", f"from gpt2tune.model import init_tiny; init_tiny({str(model_dir)!r})"],
                       check=True, cwd=ROOT, capture_output=True)
    t0 = time.perf_counter()
    from gpt2tune.config import TuneConfig
    from gpt2tune.training.prepare import prepare

    run_dir = Path(cache_dir) / "run"  # the caches sit beside it, in cache_dir
    config = TuneConfig(csv=csv, base_model=str(model_dir), output_dir=str(run_dir), max_length=max_length)
    t_import = time.perf_counter()
    marks = {}

    def on_event(event):  # the first status line comes once the file is loaded and cleaned
        marks.setdefault("loaded", (time.perf_counter(), _rss_gib("VmHWM")))

    prepared = prepare(config, on_event=on_event, output_dir=run_dir)
    t_prep = time.perf_counter()
    report = prepared.prep
    t_load, rss_after_load = marks["loaded"]
    return {
        "csv_rows": len(prepared.data.frame), "from_cache": report.from_cache, "train_rows": report.train_rows,
        "train_tokens": report.train_tokens, "max_length": prepared.resolved.max_length,
        "tokens_per_example": report.train_tokens / report.train_examples,
        "padding_waste_unpacked": report.padding_waste_unpacked,
        "import_s": t_import - t0, "load_csv_s": t_load - t_import, "prepare_s": t_prep - t_load,
        "total_s": t_prep - t0, "peak_rss_after_load_gib": rss_after_load, "peak_rss_gib": _rss_gib("VmHWM"),
        "load_1min": os.getloadavg()[0],
    }


def _in_fresh_process(csv: Path, cache_dir: Path, max_length: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", str(csv), "--cache", str(cache_dir),
                           "--max-length", str(max_length)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--folder", default="/tmp/gpt2tune-prep-scale")
    parser.add_argument("--max-length", type=int, default=0)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one run in this process
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(prepare_once(args.one, args.cache, args.max_length)))
        return 0

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for rows in (args.small_rows, args.rows):
        csv = folder / f"qa_{rows}.csv"
        if not csv.exists():
            t0 = time.perf_counter()
            write_csv(csv, rows)
            print(f"wrote {csv} ({csv.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s", flush=True)
        cache_dir = folder / f"cache_{rows}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        for attempt in ("first", "second"):
            result = _in_fresh_process(csv, cache_dir, args.max_length)
            results[f"{rows}_{attempt}"] = result
            print(f"{rows:>9,} rows, {attempt} run ({'cache hit' if result['from_cache'] else 'tokenized'}): "
                  f"load CSV {result['load_csv_s']:.1f} s, prepare {result['prepare_s']:.1f} s, "
                  f"peak RSS {result['peak_rss_gib']:.2f} GiB (after CSV load {result['peak_rss_after_load_gib']:.2f}); "
                  f"{result['tokens_per_example']:.0f} tokens/example, {result['train_rows']:,} packed train rows",
                  flush=True)
        print(f"  cache on disk: {sum(p.stat().st_size for p in cache_dir.rglob('*') if p.is_file()) / 2**20:.0f} MiB")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
