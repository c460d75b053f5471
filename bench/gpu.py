"""GPU in one command: the tutorial recipe against gpt2tune on GPT-2 124M, training and decoding.

    python bench/gpu.py                 # on a CUDA machine: ~4 minutes, appends a table to bench/RESULTS.md
    python bench/gpu.py --dry-run       # anywhere: a 2-layer model, 2 steps, no RESULTS.md change

Segments (one JSON line each, as it finishes):
  train  pubmedqa: tutorial (fp32, 8 x 128 padded), gpt2tune defaults, and gpt2tune with the other
         torch.compile choice (eager where the defaults compile, as on CUDA; compiled elsewhere)
  train  gsm8k at max length 512: the same three (tutorial padded to 512)
  decode GPT-2 124M greedy: the default dynamic cache, and on CUDA the static cache that transformers
         compiles (gpt2tune.generation_weights.use_static_cache)
Training figures: real (non-padding) tokens/s, MFU against the GPU's dense bf16 peak
(6 x parameters x real tokens/s / peak), peak CUDA memory. Decoding: first-token and per-token ms.
Models are randomly initialised from the GPT-2 config with the real tokenizer (speed does not depend
on the weights). Past the time budget, remaining segments are skipped and say so.
Every CUDA call sits behind torch.cuda.is_available(): a dry run on a CPU goes through the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATASETS = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "RESULTS.md"


def plan(dry_run: bool) -> dict:
    """Sizes per mode: a real GPU run of ~4 minutes, or a dry run of the same code paths."""
    if dry_run:
        return {"config": "tiny", "warmup": 1, "steps": 2, "rows": 64, "decode_tokens": 8, "decode_repeats": 1}
    return {"config": "124m", "warmup": 5, "steps": 20, "rows": None, "decode_tokens": 64, "decode_repeats": 3}


def train_segments(sizes: dict) -> list[dict]:
    """(dataset, csv, gpt2tune rows x length, tutorial length) for each workload."""
    from gpt2tune.config import TuneConfig

    defaults = TuneConfig()
    return [
        {"dataset": "pubmedqa", "csv": DATASETS / "pubmedqa" / "qa.csv", "batch_size": defaults.batch_size,
         "max_length": defaults.max_length, "tutorial_max_length": 128},
        {"dataset": "gsm8k", "csv": DATASETS / "gsm8k" / "qa.csv", "batch_size": defaults.batch_size,
         "max_length": 512, "tutorial_max_length": 512},
    ]


def _csv_for(workload: dict, rows: int | None, work: Path) -> str:
    """The dataset, or its first `rows` rows for a dry run (falls back to the bundled sample)."""
    import pandas as pd

    csv = Path(workload["csv"])
    if not csv.exists():
        csv = ROOT / "assets" / "sample_qa.csv"
    if rows is None:
        return str(csv)
    small = work / f"{workload['dataset']}_{rows}.csv"
    pd.read_csv(csv, nrows=rows).to_csv(small, index=False)
    return str(small)


def run_training(workload, recipe, sizes, model_dir, params, peak_flops, work) -> dict:
    from bench.train_speed import run_gpt2tune, run_tutorial
    from gpt2tune.data.load import load_qa_data

    csv = _csv_for(workload, sizes["rows"], work)
    args = argparse.Namespace(warmup=sizes["warmup"], steps=sizes["steps"], batch_size=workload["batch_size"],
                              max_length=workload["max_length"], precision="auto",
                              tutorial_max_length=workload["tutorial_max_length"])
    if recipe == "tutorial":
        segment = run_tutorial(model_dir, load_qa_data(csv).frame, sizes["config"], args, params, peak_flops)
    else:
        compile_choice = {"gpt2tune defaults": "auto", "gpt2tune eager": "off", "gpt2tune compiled": "on"}[recipe]
        segment = run_gpt2tune(model_dir, csv, sizes["config"], args, params, peak_flops, compile_choice)
    values = asdict(segment)
    return {"kind": "train", "dataset": workload["dataset"], "recipe": recipe, "label": segment.name,
            "real_tok_s": values["real_tokens_per_s"], "mfu": values["mfu"], "peak_mem_gib": values["cuda_peak_gib"],
            "peak_rss_gib": values["peak_rss_gib"], "warmup_s": values["warmup_s"], "precision": values["precision"]}


def run_decoding(variant: str, sizes: dict, model_dir: Path) -> dict:
    import torch

    from bench.generate_speed import measure
    from gpt2tune.generate import ModelCache
    from gpt2tune.generation_weights import use_static_cache

    model, tokenizer = ModelCache(capacity=1).get(str(model_dir))
    if torch.cuda.is_available():
        model = model.to("cuda")
        torch.cuda.reset_peak_memory_stats()
    static = use_static_cache(model) if variant == "static cache, compiled" else False
    result = measure(model, tokenizer, sizes["decode_tokens"], sizes["decode_repeats"])
    return {"kind": "decode", "recipe": variant, "static_cache": static, "device": model.device.type,
            "first_token_ms": result["first_token_ms"], "ms_per_token": result["steady_ms_per_token_last_quarter"],
            "tokens_per_s": result["steady_tokens_per_s"],
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None}


def append_results(lines: list[dict], machine: dict, command: str) -> None:
    """A dated section in bench/RESULTS.md: one row per segment, ratios against the tutorial."""
    tutorial = {line["dataset"]: line["real_tok_s"] for line in lines
                if line.get("kind") == "train" and line["recipe"] == "tutorial" and "error" not in line}
    rows = []
    for line in lines:
        if "error" in line or "skipped" in line:
            why = line.get("error") or line["skipped"]
            rows.append(f"| {line.get('dataset', 'decode')} | {line['recipe']} | {why} | | | | |")
        elif line["kind"] == "train":
            base = tutorial.get(line["dataset"])
            ratio = f"{line['real_tok_s'] / base:.1f}×" if base else "–"
            mfu = f"{100 * line['mfu']:.1f} %" if line["mfu"] is not None else "–"
            mem = f"{line['peak_mem_gib']:.1f}" if line["peak_mem_gib"] is not None else "–"
            rows.append(f"| {line['dataset']} | {line['recipe']}: {line['label']} | {line['real_tok_s']:,.0f} tok/s "
                        f"| {ratio} | {mfu} | {mem} | {line['warmup_s']:.0f} s warm-up |")
        else:
            mem = f"{line['peak_mem_gib']:.1f}" if line["peak_mem_gib"] is not None else "–"
            rows.append(f"| decode | {line['recipe']} | {line['ms_per_token']:.1f} ms/token | – | – | {mem} "
                        f"| first token {line['first_token_ms']:.0f} ms |")
    text = (f"\n## GPU run {machine['date']}: {machine.get('gpu', 'no GPU')}\n\n"
            f"`{command}` (torch {machine['torch']}, transformers {machine['transformers']}, CPU {machine['cpu']})\n\n"
            "| workload | recipe | speed | × tutorial | MFU (bf16 peak) | peak GiB | notes |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny model, 2 steps: exercise every path (CPU is fine)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="skip segments that would start after this (default: 240 s; none for a dry run)")
    parser.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)

    import torch

    from bench.train_speed import _peak_flops, machine_description, make_base_model

    started = time.perf_counter()
    sizes = plan(args.dry_run)
    if args.budget_s is None:
        args.budget_s = float("inf") if args.dry_run else 240.0
    machine = machine_description()
    print(json.dumps({"kind": "machine", **machine, "dry_run": args.dry_run}), flush=True)
    if not torch.cuda.is_available() and not args.dry_run:
        print(json.dumps({"kind": "error", "error": "no CUDA device: run with --dry-run to exercise the code paths"}))
        return 2
    peak_flops = _peak_flops(None)
    from gpt2tune.device import inspect_devices

    # The defaults compile where `auto` says so (CUDA): then the eager run is the other one, else the compiled.
    other = "gpt2tune eager" if inspect_devices().compile else "gpt2tune compiled"
    recipes = ("tutorial", "gpt2tune defaults", other)
    lines = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model_dir, params = make_base_model(sizes["config"], work / sizes["config"])
        jobs = [("train", workload, recipe) for workload in train_segments(sizes) for recipe in recipes]
        jobs += [("decode", None, variant) for variant in ("dynamic cache", "static cache, compiled")]
        for kind, workload, recipe in jobs:
            base = {"kind": kind, "recipe": recipe, **({"dataset": workload["dataset"]} if workload else {})}
            if time.perf_counter() - started > args.budget_s:
                line = {**base, "skipped": f"past the {args.budget_s:.0f} s budget"}
            else:
                try:
                    line = (run_training(workload, recipe, sizes, model_dir, params, peak_flops, work)
                            if kind == "train" else run_decoding(recipe, sizes, model_dir))
                except Exception as error:  # noqa: BLE001  (one failed segment must not hide the others' figures)
                    line = {**base, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
            line["elapsed_s"] = round(time.perf_counter() - started, 1)
            lines.append(line)
            print(json.dumps(line), flush=True)
    if not args.dry_run and not args.no_results:
        append_results(lines, machine, "python bench/gpu.py")
    failed = [line for line in lines if "error" in line]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
