"""Shared fixtures: a tiny random GPT-2 with the real tokenizer, and one short fine-tune of it.

Building and training once per session keeps the suite fast on 2 CPU cores.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = ROOT / "assets" / "sample_qa.csv"
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# No test may reach the internet; the Hub is only ever the local olah server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Everything the app or CLI would write under its working folder goes to a throw-away place.
os.environ.setdefault("GPT2TUNE_HOME", tempfile.mkdtemp(prefix="gpt2tune-test-home-"))
os.environ.setdefault("GPT2TUNE_CACHE_DIR", tempfile.mkdtemp(prefix="gpt2tune-test-cache-"))
# A CPU's bf16 choice is measured in a run (gpt2tune/device.py); tests give it the ratio instead, so
# no test depends on this machine's speed: 1.0 keeps every CPU test in fp32 (tests of the rule
# inject their own ratios and timings).
os.environ.setdefault("GPT2TUNE_BF16_SPEEDUP", "1.0")


def expected_device() -> tuple[str, str]:
    """(device, precision) that `auto` should pick on this machine, worked out from the hardware:
    CUDA with bf16 if the GPU has it (else fp16), Apple MPS in fp32, a CPU in bf16 only when it has
    bf16 instructions (the `avx512_bf16` or `amx_tile` flag Linux reports) and the bf16 speed-up the
    tests give (GPT2TUNE_BF16_SPEEDUP, above) is at least 1.5, else fp32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if torch.backends.mps.is_available():
        return "mps", "fp32"
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    if not flags & {"avx512_bf16", "amx_tile"}:
        return "cpu", "fp32"
    return "cpu", "bf16" if float(os.environ["GPT2TUNE_BF16_SPEEDUP"]) >= 1.5 else "fp32"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from gpt2tune.model import init_tiny

    return init_tiny(tmp_path_factory.mktemp("tiny") / "tiny-gpt2", seed=0)


def tiny_config(tiny_model_dir: Path, output_dir: Path, **overrides):
    """A config that trains the tiny model quickly but visibly (high LR, short rows)."""
    from gpt2tune.config import TuneConfig

    values = dict(
        csv=str(SAMPLE_CSV),
        base_model=str(tiny_model_dir),
        output_dir=str(output_dir),
        max_steps=12,
        learning_rate=2e-3,
        batch_size=4,
        max_length=128,
        logging_steps=2,
        eval_steps=6,
        save_steps=6,
        warmup_ratio=0.0,
        eval_answer_samples=8,
    )
    values.update(overrides)
    return TuneConfig(**values)


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, tmp_path_factory):
    """One fine-tune shared by tests that only need *a* trained output folder."""
    from gpt2tune.training.train import train

    events = []
    config = tiny_config(tiny_model_dir, tmp_path_factory.mktemp("run") / "out")
    result = train(config, on_event=events.append)
    return result, events, config
