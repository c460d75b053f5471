"""The command line end to end: init-tiny → train → generate (plain and streamed) → load the folder
with plain transformers → load the same model from a Hub repo over HTTP in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO

import pytest
from conftest import SAMPLE_CSV
from hub_server import hub_env, serve_hub_repo

from gpt2tune.cli import main

QUESTION = "How do I resume training?"
STEPS = 30
NEW_TOKENS = 40  # the CLI default is 128; fewer keeps the tests quick


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`gpt2tune init-tiny` then `gpt2tune train` for 30 steps at a high learning rate."""
    root = tmp_path_factory.mktemp("cli")
    code, out, err = run_cli("init-tiny", root / "tiny")
    assert code == 0 and "wrote" in out, err
    code, out, err = run_cli(
        "train", "--csv", SAMPLE_CSV, "--base-model", root / "tiny", "--output-dir", root / "out",
        "--max-steps", STEPS, "--lr", "2e-3", "--max-length", "128", "--batch-size", "2", "--warmup-ratio", "0",
        "--logging-steps", "5", "--eval-steps", "0", "--eval-answer-samples", "0",
    )
    assert code == 0, err
    return root, out, err


@pytest.mark.slow
def test_train_prints_where_the_model_is_and_learns(cli_run):
    from safetensors.torch import load_file

    root, out, err = cli_run
    assert f"model saved to {root / 'out'}" in out
    assert f"global_step: {STEPS}" in out and "error" not in err
    losses = [entry["loss"] for entry in json.loads((root / "out" / "loss_history.json").read_text())
              if "loss" in entry]
    assert len(losses) >= 6 and losses[-1] < losses[0] - 1.0
    before, after = load_file(root / "tiny" / "model.safetensors"), load_file(root / "out" / "model.safetensors")
    assert sum(not before[name].equal(after[name]) for name in before) > len(before) // 2


@pytest.fixture(scope="module")
def cli_answer(cli_run) -> str:
    code, out, err = run_cli("generate", "--model", cli_run[0] / "out", "--question", QUESTION,
                             "--max-new-tokens", NEW_TOKENS)
    assert code == 0, err
    return out.strip()


@pytest.mark.slow
def test_generate_prints_the_greedy_continuation(cli_run, cli_answer):
    """The CLI's defaults are greedy with repetition penalty 1.1: the same as decoding by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpt2tune.data.prompt import format_prompt

    folder = cli_run[0] / "out"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(format_prompt(QUESTION), return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=NEW_TOKENS, repetition_penalty=1.1,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    assert cli_answer == tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.slow
def test_stream_prints_the_same_answer(cli_run, cli_answer):
    code, out, err = run_cli("generate", "--model", cli_run[0] / "out", "--question", QUESTION,
                             "--max-new-tokens", NEW_TOKENS, "--stream")
    assert code == 0, err
    assert out.strip() == cli_answer


@pytest.mark.slow
def test_int8_weights_give_the_trained_answer(cli_run, cli_answer):
    """A trained model's next tokens are far apart in probability: a quarter of the bytes per weight
    does not change its greedy answer."""
    code, out, err = run_cli("generate", "--model", cli_run[0] / "out", "--question", QUESTION,
                             "--max-new-tokens", NEW_TOKENS, "--weights", "int8", "--stream")
    assert code == 0, err
    assert out.strip() == cli_answer


@pytest.mark.slow
def test_plain_transformers_load_gives_the_same_greedy_output(cli_run, cli_answer):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpt2tune.config import GenerationSettings
    from gpt2tune.generate import answer
    from gpt2tune.data.prompt import format_prompt

    folder = cli_run[0] / "out"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert answer(model, tokenizer, QUESTION, GenerationSettings(max_new_tokens=NEW_TOKENS)) == cli_answer

    # Plain greedy decoding with nothing from gpt2tune but the prompt template.
    plain = GenerationSettings(repetition_penalty=1.0, max_new_tokens=NEW_TOKENS)
    encoded = tokenizer(format_prompt(QUESTION), return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**encoded, do_sample=False, max_new_tokens=NEW_TOKENS, repetition_penalty=1.0,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    by_hand = tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer(model, tokenizer, QUESTION, plain) == by_hand


@pytest.mark.slow
def test_generate_from_a_hub_repo_over_http(cli_run, cli_answer, tmp_path):
    folder = cli_run[0] / "out"
    with serve_hub_repo(folder, "tester/tiny-gpt2", workdir=tmp_path / "hub") as endpoint:
        env = {**os.environ, **hub_env(endpoint, tmp_path / "hf-cache")}
        done = subprocess.run(
            [sys.executable, "-m", "gpt2tune", "generate", "--model", "tester/tiny-gpt2", "--question", QUESTION,
             "--max-new-tokens", str(NEW_TOKENS)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == cli_answer
    assert any((tmp_path / "hf-cache").rglob("model.safetensors"))  # it really came over HTTP
