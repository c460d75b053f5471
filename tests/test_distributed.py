"""Data-parallel training on 2 CPU processes (DDP over gloo), launched the way a user would.

`accelerate launch --multi_gpu` starts one process per rank with torch.distributed's launcher; on a
machine without GPUs each rank trains on the CPU and gradients are averaged over gloo. (`--cpu`
alone starts one process: accelerate runs several CPU processes only through mpirun.)
"""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import SAMPLE_CSV
from net import free_port

STEPS, BATCH, MAX_LENGTH = 8, 4, 128


@pytest.mark.slow
def test_two_processes_train_one_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    output_dir = tmp_path / "runs" / "ddp"
    port = free_port()  # where the ranks meet
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
        "-m", "gpt2tune", "train", "--csv", str(SAMPLE_CSV), "--base-model", str(tiny_model_dir),
        "--output-dir", str(output_dir), "--max-steps", str(STEPS), "--batch-size", str(BATCH),
        "--max-length", str(MAX_LENGTH), "--lr", "2e-3", "--warmup-ratio", "0", "--logging-steps", "1",
        "--eval-steps", "0", "--save-steps", "4", "--eval-answer-samples", "0", "--precision", "fp32",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]

    # Both ranks prepared the data: one built the cache entry, the other waited on its lock and read it.
    assert len(re.findall(r"train: \d+ examples in \d+ packed rows", log)) == 2, log[-3000:]
    assert log.count("tokenized data reused from the cache") == 1
    # Only rank 0 saves: one checkpoint event per save step, one model in the output folder.
    assert log.count("checkpoint saved:") == STEPS // 4
    assert sorted(p.name for p in output_dir.glob("*.safetensors")) == ["model.safetensors"]
    assert not (output_dir / ".staging").exists()
    AutoModelForCausalLM.from_pretrained(output_dir)

    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["global_step"] == STEPS
    # Real tokens are summed over both ranks: more than one process could have fed in STEPS steps.
    assert metrics["train_real_tokens"] > STEPS * BATCH * MAX_LENGTH
    # Each rank read its own share of the rows: an epoch took half the steps one process needs.
    rows = _packed_train_rows(tiny_model_dir)
    assert metrics["epoch"] == pytest.approx(STEPS / -(-rows // (2 * BATCH)), abs=0.01)

    history = json.loads((output_dir / "loss_history.json").read_text())
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) >= STEPS - 1
    assert losses[-1] < losses[0] - 0.2


def _packed_train_rows(tiny_model_dir) -> int:
    from gpt2tune.config import TuneConfig
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.model import load_tokenizer
    from gpt2tune.data.prep import prepare_datasets, split_frame

    defaults = TuneConfig()
    train_frame, eval_frame = split_frame(load_qa_data(SAMPLE_CSV).frame, defaults.eval_fraction, defaults.seed)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    return prepare_datasets(train_frame, eval_frame, tokenizer, MAX_LENGTH, True, True)[2].train_rows
