"""The whole `gpt2tune train` command against a tutorial script, wall clock to wall clock.

    python bench/whole_command.py [--csv ../shared/datasets/gsm8k/qa.csv] [--rows 800] [--layers 6 --width 384]

Both run one epoch on the same first `--rows` rows, in their own process, from a cold start (imports
included) to a saved model, on the same randomly initialised GPT-2 (real tokenizer):
  tutorial: the script most GPT-2 fine-tuning tutorials write: a 10 % eval split, every example padded
      to 128 tokens, `DataCollatorForLanguageModeling(mlm=False)` with pad = EOS, the `Trainer`'s
      defaults (batch 8, fp32), an eval at the end of the epoch, `save_model`;
  gpt2tune: `python -m gpt2tune train --epochs 1` with every other setting at its default (the same 10 %
      eval split, periodic evals, answer scoring within its time budget, checkpoints).
gpt2tune's own metrics.json splits its time into preparation, training, evaluation and answer scoring;
the tutorial's split is measured the same way inside its script. Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TUTORIAL = r'''
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
import torch
from datasets import Dataset
from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer,
                          TrainingArguments)

csv, model_dir, out = sys.argv[1:4]
max_length = int(sys.argv[4]) if len(sys.argv) > 4 else 128  # the tutorial's own; peers.py passes gpt2tune's
bf16 = len(sys.argv) > 5 and sys.argv[5] == "bf16"  # what a careful tutorial user adds
tokenizer = AutoTokenizer.from_pretrained(model_dir)
tokenizer.pad_token = tokenizer.eos_token
frame = pd.read_csv(csv)
texts = [f"Question: {q}\nAnswer: {a}{tokenizer.eos_token}" for q, a in zip(frame["question"], frame["answer"])]
split = Dataset.from_dict({"text": texts}).train_test_split(test_size=0.1, seed=42)
tokenized = split.map(lambda b: tokenizer(b["text"], truncation=True, padding="max_length", max_length=max_length),
                      batched=True, remove_columns=["text"])
model = AutoModelForCausalLM.from_pretrained(model_dir)
args = TrainingArguments(output_dir=out, num_train_epochs=1, per_device_train_batch_size=8,
                         per_device_eval_batch_size=8, eval_strategy="epoch", save_strategy="no",
                         report_to="none", disable_tqdm=True, logging_steps=50, bf16=bf16,
                         use_cpu=bf16 and not torch.cuda.is_available())  # bf16 on a CPU must say so
trainer = Trainer(model=model, args=args, train_dataset=tokenized["train"], eval_dataset=tokenized["test"],
                  data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
t1 = time.perf_counter()
trainer.train()
t2 = time.perf_counter()
trainer.save_model(out)
tokenizer.save_pretrained(out)
t3 = time.perf_counter()
evals = sum(e.get("eval_runtime", 0.0) for e in trainer.state.log_history)
real = sum(sum(m) for m in tokenized["train"]["attention_mask"])
print(json.dumps({"preparation": t1 - t0, "training": t2 - t1 - evals, "evaluation": evals, "saving": t3 - t2,
                  "real_tokens_per_epoch": real, "max_length": max_length}))
'''


def subset_csv(csv: Path, rows: int, folder: Path) -> Path:
    import pandas as pd

    frame = pd.read_csv(csv).head(rows)
    frame = frame.rename(columns=dict(zip(frame.columns[:2], ("question", "answer"))))
    path = folder / f"{csv.parent.name}_{rows}.csv"
    frame[["question", "answer"]].to_csv(path, index=False)
    return path


def make_model(folder: Path, layers: int, width: int) -> Path:
    from gpt2tune.model import init_tiny

    return init_tiny(folder / f"gpt2-{layers}x{width}", n_layer=layers, n_embd=width, n_head=max(1, width // 64))


def timed(command: list[str], env: dict, timeout: float | None = None) -> tuple[float, str]:
    """(wall seconds, stdout) of a command; subprocess.TimeoutExpired past `timeout`."""
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=timeout)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main(argv=None) -> int:
    from bench.train_speed import machine_description, shared_datasets

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(shared_datasets() / "gsm8k" / "qa.csv"))
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=384)
    args = parser.parse_args(argv)

    machine = machine_description()
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores; load average "
          f"{' '.join(f'{x:.2f}' for x in machine['load_average'])}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = subset_csv(Path(args.csv), args.rows, tmp)
        model = make_model(tmp, args.layers, args.width)
        results = {}
        wall, out = timed([sys.executable, "-c", TUTORIAL, str(csv), str(model), str(tmp / "tutorial")], env)
        results["tutorial"] = {"wall_s": wall, **json.loads(out.strip().splitlines()[-1])}
        print(f"tutorial: {wall:.1f} s", flush=True)
        run = tmp / "gpt2tune"
        wall, _ = timed([sys.executable, "-m", "gpt2tune", "train", "--csv", str(csv), "--base-model", str(model),
                         "--output-dir", str(run), "--epochs", "1"], env)
        metrics = json.loads((run / "metrics.json").read_text())
        results["gpt2tune"] = {"wall_s": wall, **metrics["time_s"],
                               "real_tokens_per_epoch": metrics.get("train_real_tokens"),
                               "max_length": metrics.get("max_length"), "answered": metrics.get("answer_samples")}
        print(f"gpt2tune: {wall:.1f} s", flush=True)
    base = results["tutorial"]["wall_s"]
    print(f"\n{args.rows} rows of {Path(args.csv).parent.name}, GPT-2 {args.layers} layers x {args.width}, one epoch; "
          f"load average after: {os.getloadavg()[0]:.2f}")
    print("| recipe | whole command s | × tutorial (speed) | preparation s | training s | evaluation s "
          "| answer scoring s | real tokens / epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['wall_s']:.1f} | {base / r['wall_s']:.2f}× | {r.get('preparation', 0):.1f} | "
              f"{r.get('training', 0):.1f} | {r.get('evaluation', 0):.1f} | {r.get('answer_scoring', 0):.1f} | "
              f"{r.get('real_tokens_per_epoch') or 0:,} |")
    print(json.dumps({"machine": machine, "rows": args.rows, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
