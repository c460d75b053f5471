"""Training speed: a tutorial GPT-2 fine-tune against gpt2tune's training path, side by side.

    python bench/train_speed.py [--csv ../shared/datasets/pubmedqa/qa.csv] [--configs small,124m] [--steps 6]

One process, one CSV, one model config at a time, on whatever this machine has (CUDA if present):
  (a) tutorial: the plain `Trainer` with its defaults, every example padded to max_length=128 by the
      tokenizer, `DataCollatorForLanguageModeling(mlm=False)` with pad = EOS, fp32, batch 8;
  (b) gpt2tune: `gpt2tune.training.train.train` itself (packed rows, per-example attention, device-picked
      precision, dropout 0, fused AdamW), timed by a callback added to the Trainer it builds.
Each segment runs `--warmup` steps (not timed: allocator, torch.compile) and then `--steps` timed
steps. Real tokens are non-padding input tokens. Models are randomly initialised from the GPT-2
config with the real tokenizer (the Hub may be unreachable): speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

def shared_datasets() -> Path:
    """The shared data folder: beside the checkout, or beside the folder that holds several checkouts."""
    return next((p / "shared" / "datasets" for p in ROOT.parents if (p / "shared" / "datasets").is_dir()),
                ROOT.parent / "shared" / "datasets")


MODEL_CONFIGS = {  # GPT2Config overrides; "124m" is GPT-2 small as released
    "small": dict(n_layer=4, n_embd=256, n_head=4),
    "124m": dict(),
    "tiny": dict(n_layer=2, n_embd=64, n_head=2),  # dry runs: exercises the code paths in seconds
}
TUTORIAL_MAX_LENGTH, TUTORIAL_BATCH = 128, 8
# Dense bf16 peak of common GPUs, FLOP/s (MFU denominators); --peak-tflops overrides.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
                   "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12}


@dataclass
class Segment:
    name: str
    config: str
    steps: int
    real_tokens_per_s: float  # timed steps: their real tokens / their wall time
    median_step_tokens_per_s: float  # per-step median: robust to a noisy neighbour
    real_tokens_per_step: float
    slots_per_step: int  # batch x padded width: what the model computes on
    warmup_s: float
    peak_rss_gib: float
    rss_growth_gib: float  # peak RSS minus RSS at the segment's start
    cuda_peak_gib: float | None
    mfu: float | None
    precision: str
    final_loss: float | None
    load_1min: float = 0.0  # the machine's 1-minute load average when the segment ended


# --- measurement helpers --------------------------------------------------------------------------


def _trainer_callback_class():
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        """Wall time and real-token count at every step end: the gaps include data loading."""

        def __init__(self):
            self.marks = []  # (time, tokens seen, batch slots)
            self.losses = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks = [(time.perf_counter(), state.num_input_tokens_seen)]

        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    return StepClock


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rss_gib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _start_memory_window() -> float:
    """Free what the last segment left, reset the peak-RSS mark (Linux) and the CUDA peak."""
    import torch

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back, so RSS starts low
    except OSError:
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5 = reset VmHWM to the current RSS
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return _rss_gib()


def _summarise(name, config_name, clock, warmup, slots, start_rss, warmup_s, params, precision, peak_flops):
    import torch

    marks = clock.marks[warmup:]  # marks[0] closes the last warm-up step
    steps = len(marks) - 1
    if steps < 1:
        raise ValueError(f"{name}: no timed steps (ran {len(clock.marks) - 1}, warm-up {warmup})")
    tokens = marks[-1][1] - marks[0][1]
    seconds = marks[-1][0] - marks[0][0]
    per_step = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(marks)]
    rate = tokens / seconds
    cuda_peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    mfu = 6 * params * rate / peak_flops if peak_flops else None
    return Segment(
        name=name, config=config_name, steps=steps, real_tokens_per_s=rate,
        median_step_tokens_per_s=statistics.median(per_step), real_tokens_per_step=tokens / steps,
        slots_per_step=slots, warmup_s=warmup_s, peak_rss_gib=_rss_gib("VmHWM"),
        rss_growth_gib=_rss_gib("VmHWM") - start_rss, cuda_peak_gib=cuda_peak, mfu=mfu,
        precision=precision, final_loss=clock.losses[-1] if clock.losses else None,
        load_1min=os.getloadavg()[0],
    )


def noisy(load_before: float, segments: list[Segment]) -> str | None:
    """Why a run's figures are not to be trusted, or None. Another process on the same cores shows as
    load before we start (over half a core) or as load above our own threads while we run; on a
    shared 2-core machine that made a 1.7x speed-up read 0.87x."""
    import torch

    threads = torch.get_num_threads()
    if load_before > 0.5:
        return f"load average {load_before:.2f} before the run started: another process shares these cores"
    busiest = max((s.load_1min for s in segments), default=0.0)
    if busiest > threads + 1:
        return f"load average reached {busiest:.2f} with {threads} torch threads of ours: another process was busy"
    return None


# --- the two recipes ------------------------------------------------------------------------------


def make_base_model(config_name: str, folder: Path) -> tuple[Path, int]:
    """A randomly initialised GPT-2 of the named size with the real GPT-2 tokenizer, saved to `folder`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt2tune.model import load_tokenizer
    from gpt2tune.paths import TOKENIZER_DIR

    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, **MODEL_CONFIGS[config_name])
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, sum(p.numel() for p in model.parameters())


def run_tutorial(model_dir: Path, frame, config_name, args, params, peak_flops) -> Segment:
    """The recipe of most GPT-2 fine-tuning tutorials, kept as they write it."""
    from datasets import Dataset
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, PrinterCallback,
                              Trainer, TrainingArguments)
    from transformers.utils.import_utils import enable_tf32

    from gpt2tune.data.prompt import format_answer, format_prompt

    enable_tf32(False)  # true fp32, as a tutorial runs it (an earlier gpt2tune segment may have turned TF32 on)
    start_rss = _start_memory_window()
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    texts = [format_prompt(q) + format_answer(a) + tokenizer.eos_token for q, a in zip(frame["question"], frame["answer"])]
    max_length = getattr(args, "tutorial_max_length", TUTORIAL_MAX_LENGTH)
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, padding="max_length", max_length=max_length),
        batched=True, remove_columns=["text"],
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    clock = _trainer_callback_class()()
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=TUTORIAL_BATCH, max_steps=args.warmup + args.steps,
            logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
            include_num_input_tokens_seen="non_padding",  # measurement only: counts attention-mask ones
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=dataset,
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # keep the benchmark's output readable
        trainer.train()
    warmup_s = clock.marks[args.warmup][0] - t0
    return _summarise(f"tutorial (fp32, padded {TUTORIAL_BATCH}x{max_length})", config_name, clock, args.warmup,
                      TUTORIAL_BATCH * max_length, start_rss, warmup_s, params, "fp32", peak_flops)


def run_gpt2tune(model_dir: Path, csv: str, config_name, args, params, peak_flops, compile_: bool | str) -> Segment:
    """`gpt2tune.training.train.train`, unchanged, with a step clock added to the Trainer it builds."""
    import gpt2tune.training.train as training
    from gpt2tune.config import TuneConfig

    clock = _trainer_callback_class()()
    build = training._build_trainer

    def build_with_clock(*a, **k):
        trainer, stopper = build(*a, **k)
        trainer.add_callback(clock)
        return trainer, stopper

    start_rss = _start_memory_window()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        config = TuneConfig(
            csv=csv, base_model=str(model_dir), output_dir=str(Path(out) / "run"), eval_fraction=0.0,
            max_steps=args.warmup + args.steps, batch_size=args.batch_size, max_length=args.max_length,
            save_steps=0, logging_steps=1, precision=args.precision,
            torch_compile=compile_ if isinstance(compile_, str) else "on" if compile_ else "off",
            **_quiet_extras(TuneConfig),
        )
        training._build_trainer = build_with_clock
        try:
            result = training.train(config)
        finally:
            training._build_trainer = build
    warmup_s = clock.marks[args.warmup][0] - t0
    compiled = result.metrics.get("torch_compile", compile_ in (True, "on"))
    name = f"gpt2tune ({result.metrics['precision']}, packed {args.batch_size}x{args.max_length}" + (
        ", compiled)" if compiled else ")")
    return _summarise(name, config_name, clock, args.warmup, args.batch_size * args.max_length, start_rss,
                      warmup_s, params, result.metrics["precision"], peak_flops)


def _quiet_extras(cls) -> dict:
    """Switch off after-training extras that are not training (answer scoring) where the config has them."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {"eval_answer_samples": 0} if "eval_answer_samples" in names else {}


# --- report -----------------------------------------------------------------------------------------


def machine_description() -> dict:
    import torch

    model_name = next((line.split(":", 1)[1].strip() for line in _lscpu().splitlines()
                       if line.startswith("Model name")), platform.processor())
    info = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": model_name, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average": os.getloadavg()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    import transformers

    info["transformers"] = transformers.__version__
    return info


def _lscpu() -> str:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def _peak_flops(override_tflops: float | None) -> float | None:
    import torch

    if override_tflops:
        return override_tflops * 1e12
    if not torch.cuda.is_available():
        return None  # MFU is a GPU figure
    name = torch.cuda.get_device_name(0)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def print_table(segments: list[Segment]) -> None:
    header = ("| model | recipe | real tok/s | median step tok/s | × tutorial | real tok/step | slots/step "
              "| peak RSS GiB (growth) | CUDA peak GiB | MFU | warm-up s | load |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    base = {}
    for s in segments:
        if s.name.startswith("tutorial"):
            base[s.config] = s.real_tokens_per_s
        ratio = s.real_tokens_per_s / base[s.config] if s.config in base else float("nan")
        cuda = f"{s.cuda_peak_gib:.2f}" if s.cuda_peak_gib is not None else "–"
        mfu = f"{100 * s.mfu:.1f} %" if s.mfu is not None else "–"
        print(f"| {s.config} | {s.name} | {s.real_tokens_per_s:,.0f} | {s.median_step_tokens_per_s:,.0f} | "
              f"{ratio:.2f}× | {s.real_tokens_per_step:,.0f} | {s.slots_per_step} | "
              f"{s.peak_rss_gib:.2f} ({s.rss_growth_gib:+.2f}) | {cuda} | {mfu} | {s.warmup_s:.0f} | {s.load_1min:.2f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_csv = shared_datasets() / "pubmedqa" / "qa.csv"
    parser.add_argument("--csv", default=str(default_csv if default_csv.exists() else ROOT / "assets" / "sample_qa.csv"))
    parser.add_argument("--configs", default="small,124m", help=f"comma-separated: {', '.join(MODEL_CONFIGS)}")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per segment")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile, allocator)")
    parser.add_argument("--batch-size", type=int, default=4, help="gpt2tune rows per step (4 x 256 = the "
                        "tutorial's 1024 token slots per step)")
    parser.add_argument("--max-length", type=int, default=256, help="gpt2tune row length")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    parser.add_argument("--compile", default="both", choices=("off", "on", "both"),
                        help="gpt2tune with torch.compile off, on, or one segment each")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s of the GPU for MFU")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from gpt2tune.data.load import load_qa_data

    machine = machine_description()
    print(json.dumps(machine))
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores; load average {machine['load_average'][0]:.2f} "
          f"{machine['load_average'][1]:.2f} {machine['load_average'][2]:.2f}", flush=True)
    frame = load_qa_data(args.csv).frame
    print(f"data: {args.csv}: {len(frame)} question/answer pairs", flush=True)
    peak_flops = _peak_flops(args.peak_tflops)
    compile_modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    segments = []
    with tempfile.TemporaryDirectory() as work:
        for config_name in args.configs.split(","):
            model_dir, params = make_base_model(config_name, Path(work) / config_name)
            print(f"== {config_name}: {params / 1e6:.1f}M parameters", flush=True)
            for compiled in [None, *compile_modes]:  # None: the tutorial
                if compiled is None:
                    segment = run_tutorial(model_dir, frame, config_name, args, params, peak_flops)
                else:
                    segment = run_gpt2tune(model_dir, args.csv, config_name, args, params, peak_flops, compiled)
                segments.append(segment)
                print(f"   {segment.name}: {segment.real_tokens_per_s:,.0f} real tok/s "
                      f"(median step {segment.median_step_tokens_per_s:,.0f}), peak RSS {segment.peak_rss_gib:.2f} GiB",
                      flush=True)
    print()
    print_table(segments)
    verdict = noisy(machine["load_average"][0], segments)
    print(f"NOISY RUN: {verdict}; ratios side by side may still hold, absolute figures do not" if verdict
          else "quiet run: no other load seen")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "args": vars(args), "noisy": verdict,
                                               "segments": [asdict(s) for s in segments]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
