"""The Hub round trip: download a pushed model into a fresh cache, compare weights and answers.

The Hub is the local olah server (tests/hub_server.py); huggingface_hub reads HF_ENDPOINT when it
is imported, so everything that talks to it runs in a subprocess with that environment.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import SAMPLE_CSV
from hub_server import hub_env, serve_hub_repo

VERIFY_THEN_PUSH = """
import sys
from unittest import mock
from huggingface_hub import HfApi
from gpt2tune.cli import main

model, repo = sys.argv[1:3]
print("verify exit code", main(["verify", "--model", model, "--repo-id", repo]), flush=True)
# The upload endpoint is the one thing olah cannot serve: the served repo already holds the files.
with mock.patch.object(HfApi, "create_repo", return_value="http://hub/" + repo), \\
     mock.patch.object(HfApi, "upload_folder", return_value=None) as upload:
    code = main(["push", "--model", model, "--repo-id", repo, "--token", "hf_test_token", "--verify"])
print("push exit code", code, "uploads", upload.call_count, flush=True)
# `gpt2tune eval` takes a Hub id as well as a folder.
print("eval exit code", main(["eval", "--model", repo, "--csv", sys.argv[3], "--max-samples", "1",
                              "--max-length", "64"]))
"""


def _model_files(run_dir, destination):
    """The files a push uploads (checkpoints left out: they only slow the git mirror down)."""
    return shutil.copytree(run_dir, destination, ignore=shutil.ignore_patterns("checkpoints", ".*"))


def _run(args, endpoint, cache):
    env = {**os.environ, **hub_env(endpoint, cache)}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def served_run(trained_run, tmp_path_factory):
    result, _, _ = trained_run
    root = tmp_path_factory.mktemp("roundtrip")
    model_dir = _model_files(result.output_dir, root / "model")
    with serve_hub_repo(model_dir, "tester/tuned", workdir=root / "hub") as endpoint:
        yield model_dir, endpoint, root


@pytest.mark.slow
def test_verify_and_push_verify_match_the_served_model(served_run):
    model_dir, endpoint, root = served_run
    done = _run(["-c", VERIFY_THEN_PUSH, str(model_dir), "tester/tuned", str(SAMPLE_CSV)], endpoint, root / "cache")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "verify exit code 0" in out and "push exit code 0 uploads 1" in out
    assert out.count("round trip OK: tester/tuned matches the local model") == 2
    assert "mismatch" not in out and "DIFFERENT" not in out
    local, remote = re.search(r"weights sha256: local (\w+)…, Hub (\w+)…", out).groups()
    assert local == remote and len(local) == 16
    samples = json.loads((model_dir / "samples.json").read_text())
    for sample in samples[:3]:  # the run had no probe questions: its sample eval questions are compared
        assert out.count(f"same answer to {sample['question']!r}") == 2
    assert "hf_test_token" not in out + done.stderr
    assert "eval exit code 0" in out and "tester/tuned on sample_qa.csv (200 rows)" in out
    assert re.search(r"eval_loss: \d+\.\d{4}", out) and "answer_samples: 1" in out


@pytest.mark.slow
def test_a_different_model_on_the_hub_is_reported(trained_run, tiny_model_dir, tmp_path):
    result, _, _ = trained_run
    model_dir = _model_files(result.output_dir, tmp_path / "model")
    with serve_hub_repo(tiny_model_dir, "tester/other", workdir=tmp_path / "hub") as endpoint:
        done = _run(["-m", "gpt2tune", "verify", "--model", str(model_dir), "--repo-id", "tester/other",
                     "--question", "What is gpt2tune?"], endpoint, tmp_path / "cache")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "round trip FAILED" in done.stdout
    assert "mismatch: weights differ" in done.stdout


def test_state_dict_hash_sees_one_changed_weight(tiny_model_dir):
    import torch

    from gpt2tune.model import load_model
    from gpt2tune.hub.roundtrip import state_dict_hash

    first, second = load_model(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    assert state_dict_hash(first) == state_dict_hash(second)
    with torch.no_grad():
        second.transformer.h[0].mlp.c_fc.bias[0] += 1e-3
    assert state_dict_hash(first) != state_dict_hash(second)
