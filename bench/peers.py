"""gpt2tune against the recipes a user would pick instead, each as a whole command in its own process.

    python bench/peers.py [--quick] [--rows 800] [--datasets pubmedqa,gsm8k] [--packing-bound 600]

Same data (the first `--rows` rows of each CSV), same randomly initialised GPT-2 (`--layers` x
`--width`, real tokenizer), same max_length (the one gpt2tune's auto length picks for the data),
one epoch, a 10 % eval split, on this machine:
  gpt2tune: `python -m gpt2tune train --epochs 1 --max-length L`, every other setting at its default
      (packed rows, the precision its probe picks, periodic evals, answer scoring within its budget);
  tutorial fp32 / tutorial bf16: the tutorial script of bench/whole_command.py (every example padded
      to L, the Trainer's defaults, batch 8), as written and with `bf16=True`;
  TRL SFTTrainer: prompt/completion rows (so completion-only loss), its SFTConfig defaults (batch 8,
      gradient checkpointing, bf16), max_length L; and the same with `packing=True` (padding-free
      bfd packing), stopped after `--packing-bound` seconds if it has not finished.
Real tokens/s: the non-padding tokens of the training epoch over the training time (evals excluded);
whole command: wall time of the process, imports to saved model. Needs `pip install -r bench/requirements.txt`.
`--quick`: 200 rows and a 120 s bound for TRL's packing (minutes, for a second machine or a busy one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_speed import machine_description, shared_datasets  # noqa: E402
from bench.whole_command import TUTORIAL, make_model, subset_csv, timed  # noqa: E402

TRL = r'''
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

csv, model_dir, out, max_length, packing = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
tokenizer = AutoTokenizer.from_pretrained(model_dir)
tokenizer.pad_token = tokenizer.eos_token
frame = pd.read_csv(csv)
rows = {"prompt": [f"Question: {q}\nAnswer:" for q in frame["question"]],
        "completion": [f" {a}" for a in frame["answer"]]}
split = Dataset.from_dict(rows).train_test_split(test_size=0.1, seed=42)
model = AutoModelForCausalLM.from_pretrained(model_dir)
args = SFTConfig(output_dir=out, num_train_epochs=1, max_length=max_length, packing=packing, eval_strategy="epoch",
                 save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=50,
                 use_cpu=not torch.cuda.is_available())  # its bf16 default needs this on a CPU
trainer = SFTTrainer(model=model, args=args, train_dataset=split["train"], eval_dataset=split["test"],
                     processing_class=tokenizer)
t1 = time.perf_counter()
trainer.train()
t2 = time.perf_counter()
trainer.save_model(out)
t3 = time.perf_counter()
evals = sum(e.get("eval_runtime", 0.0) for e in trainer.state.log_history)
real = sum(len(ids) for ids in trainer.train_dataset["input_ids"])  # TRL pads per batch: every id is real
print(json.dumps({"preparation": t1 - t0, "training": t2 - t1 - evals, "evaluation": evals, "saving": t3 - t2,
                  "real_tokens_per_epoch": real, "max_length": max_length,
                  "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing,
                  "batch": args.per_device_train_batch_size, "completion_only_loss": trainer.args.completion_only_loss}))
'''


def run_gpt2tune(csv: Path, model: Path, folder: Path, env: dict, max_length: int = 0) -> dict:
    run = folder / "gpt2tune"
    wall, _ = timed([sys.executable, "-m", "gpt2tune", "train", "--csv", str(csv), "--base-model", str(model),
                     "--output-dir", str(run), "--epochs", "1", "--max-length", str(max_length)], env)
    metrics = json.loads((run / "metrics.json").read_text())
    return {"wall_s": wall, **metrics["time_s"], "real_tokens_per_epoch": metrics["train_real_tokens"],
            "max_length": metrics["max_length"], "precision": metrics["precision"],
            "bf16_speedup": (metrics.get("bf16_speedup") or {}).get("ratio")}


def run_script(script: str, args: list[str], env: dict, bound_s: float | None = None) -> dict:
    try:
        wall, out = timed([sys.executable, "-c", script, *args], env, timeout=bound_s)
    except subprocess.TimeoutExpired:
        return {"unfinished_after_s": bound_s}
    return {"wall_s": wall, **json.loads(out.strip().splitlines()[-1])}


def compare(dataset: str, csv: Path, rows: int, model: Path, folder: Path, env: dict, bound_s: float) -> dict:
    """Every recipe on the first `rows` rows, one after the other; each line is printed as it ends, so
    a run cut short still tells what it measured."""
    small = subset_csv(csv, rows, folder)
    results = {"gpt2tune": run_gpt2tune(small, model, folder, env)}
    length = str(results["gpt2tune"]["max_length"])
    recipes = {
        "tutorial fp32": (TUTORIAL, [length, "fp32"], None),
        "tutorial bf16": (TUTORIAL, [length, "bf16"], None),
        "TRL SFTTrainer": (TRL, [length, "0"], None),
        "TRL SFTTrainer packing": (TRL, [length, "1"], bound_s),
    }
    for name in ["gpt2tune", *recipes]:
        if name != "gpt2tune":
            script, extra, bound = recipes[name]
            out = folder / name.replace(" ", "-")
            results[name] = run_script(script, [str(small), str(model), str(out), *extra], env, bound)
        r = results[name]
        if r.get("training"):
            r["real_tokens_per_s"] = r["real_tokens_per_epoch"] / r["training"]
            print(f"  {dataset}: {name}: {r['real_tokens_per_s']:,.0f} real tok/s, whole command {r['wall_s']:.0f} s, "
                  f"max_length {length}, load {os.getloadavg()[0]:.2f}", flush=True)
        else:
            print(f"  {dataset}: {name}: stopped after {r['unfinished_after_s']:.0f} s", flush=True)
    return results


def print_table(dataset: str, rows: int, results: dict) -> None:
    ours = results["gpt2tune"]
    fastest = max((r.get("real_tokens_per_s", 0) for name, r in results.items() if name != "gpt2tune"), default=0)
    print(f"\n{dataset}, {rows} rows, max_length {ours['max_length']} (gpt2tune: {ours['precision']}, "
          f"bf16 probe {ours['bf16_speedup']}); load average now {os.getloadavg()[0]:.2f}")
    print("| recipe | real tok/s | gpt2tune × | whole command s | gpt2tune × (whole) | training s | real tokens |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if "unfinished_after_s" in r:
            print(f"| {name} | did not finish in {r['unfinished_after_s']:.0f} s | | | | | |")
            continue
        speed = ours["real_tokens_per_s"] / r["real_tokens_per_s"]
        print(f"| {name} | {r['real_tokens_per_s']:,.0f} | {speed:.2f}× | {r['wall_s']:.1f} | "
              f"{r['wall_s'] / ours['wall_s']:.2f}× | {r['training']:.1f} | {r['real_tokens_per_epoch']:,} |")
    if fastest:
        print(f"gpt2tune / fastest peer (tokens/s): {ours['real_tokens_per_s'] / fastest:.2f}×")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = shared_datasets()
    parser.add_argument("--datasets", default="pubmedqa,gsm8k", help=f"folders under {shared} with a qa.csv")
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--packing-bound", type=float, default=600.0, help="seconds TRL's packing may take")
    parser.add_argument("--quick", action="store_true", help="200 rows, 120 s bound for TRL's packing")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.packing_bound = min(args.rows, 200), min(args.packing_bound, 120.0)

    machine = machine_description()
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores; load average "
          f"{' '.join(f'{x:.2f}' for x in machine['load_average'])}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    everything = {"machine": machine, "rows": args.rows, "layers": args.layers, "width": args.width, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp, args.layers, args.width)
        for dataset in args.datasets.split(","):
            folder = tmp / dataset
            folder.mkdir()
            results = compare(dataset, shared / dataset / "qa.csv", args.rows, model, folder, env, args.packing_bound)
            everything["results"][dataset] = results
            print_table(dataset, args.rows, results)
    everything["load_average_after"] = os.getloadavg()
    print(json.dumps(everything))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
