"""LoRA against full fine-tuning: training speed and peak memory on the same data, side by side.

    python bench/lora_speed.py [--csv ../shared/datasets/pubmedqa/qa.csv] [--configs small,124m] [--steps 6]

For each model size, `gpt2tune.training.train.train` runs twice on the same CSV, split, seed and
batch: `method="full"` and `method="lora"` (rank 8 on c_attn, c_proj, c_fc, no dropout), each in a
fresh process so its peak memory is its own (peak RSS on the CPU, `torch.cuda.max_memory_allocated`
on a GPU). `--warmup` steps are not timed; real tokens/s is measured over the `--steps` after them
from the training progress events. Models are randomly initialised from the GPT-2 config with the
real tokenizer (the Hub may be unreachable): speed and memory do not depend on the weights. The
memory estimate of `gpt2tune check` is printed beside the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODEL_CONFIGS = {"small": dict(n_layer=4, n_embd=256, n_head=4), "124m": dict()}  # "124m": GPT-2 small
DEFAULT_CSV = ROOT.parent / "shared" / "datasets" / "pubmedqa" / "qa.csv"
GB = 2**30


def make_model(size: str, folder: Path) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt2tune.model import load_tokenizer
    from gpt2tune.paths import TOKENIZER_DIR

    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), **MODEL_CONFIGS[size])).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(args) -> None:
    """One training run; prints one JSON line with its speed and memory."""
    import torch

    from gpt2tune import events
    from gpt2tune.device import inspect_devices
    from gpt2tune.training.train import train

    config = bench_config(args, args.method, args.model, args.output)
    devices = inspect_devices(config.device, config.precision)
    marks = []  # (time, real tokens seen) at every logged step

    def on_event(event):
        if isinstance(event, events.Progress):
            marks.append((time.perf_counter(), event.tokens_seen, event.step))

    rss_before = rss_bytes()
    result = train(config, on_event=on_event)
    (t0, tokens0, _), (t1, tokens1, _) = next(m for m in marks if m[2] == args.warmup), marks[-1]
    peak = (torch.cuda.max_memory_allocated() if devices.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({
        "method": args.method, "device": devices.device, "precision": devices.precision,
        "tokens_per_s": (tokens1 - tokens0) / (t1 - t0), "timed_steps": marks[-1][2] - args.warmup,
        "trainable": result.metrics["trainable_parameters"], "peak_bytes": peak,
        "growth_bytes": peak - (0 if devices.device == "cuda" else rss_before),
    }))


def bench_config(args, method: str, model, output):
    from gpt2tune.config import TuneConfig

    return TuneConfig(csv=args.csv, base_model=str(model), output_dir=str(output), method=method, lora_dropout=0.0,
                      max_steps=args.warmup + args.steps, batch_size=args.batch_size, max_length=args.max_length,
                      eval_fraction=0.0, save_steps=0, logging_steps=1, eval_answer_samples=0, warmup_ratio=0.0,
                      seed=0)


def estimates(args, model: Path) -> dict:
    """`gpt2tune check`'s memory estimate for both methods (in this process, not in the measured ones)."""
    from gpt2tune.device import inspect_devices
    from gpt2tune.model import load_model
    from gpt2tune.training.memory import estimate

    config = bench_config(args, "full", model, "unused")
    devices = inspect_devices(config.device, config.precision)
    return {m.method: m.total for m in estimate(config, args.max_length, load_model(str(model)), devices.device,
                                                devices.precision).methods}


def run(size: str, method: str, model: Path, args, workdir: Path) -> dict:
    command = [sys.executable, __file__, "--child", "--method", method, "--model", str(model), "--csv", args.csv,
               "--output", str(workdir / f"{size}-{method}"), "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{size}/{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(DEFAULT_CSV))
    parser.add_argument("--configs", default="small,124m")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU {cpu}, {os.cpu_count()} cores; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; torch {torch.__version__}; "
          f"CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    print(f"# {Path(args.csv).name}, batch {args.batch_size} × {args.max_length} tokens (packed), "
          f"{args.warmup} warm-up + {args.steps} timed steps\n")
    print("| model | method | trains | real tok/s | × full | peak memory GiB (growth) | estimate GiB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as tmp:
        for size in args.configs.split(","):
            model = make_model(size, Path(tmp) / f"model-{size}")
            predicted = estimates(args, model)
            full = None
            for method in ("full", "lora"):
                row = run(size, method, model, args, Path(tmp))
                full = full or row
                print(f"| {size} | {method} ({row['device']}, {row['precision']}) | {row['trainable']:,} | "
                      f"{row['tokens_per_s']:,.0f} | {row['tokens_per_s'] / full['tokens_per_s']:.2f}× | "
                      f"{row['peak_bytes'] / GB:.2f} (+{row['growth_bytes'] / GB:.2f}) | "
                      f"{predicted[method] / GB:.2f} |", flush=True)
    print(f"\n# load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
