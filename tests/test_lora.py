"""LoRA adapters end to end: `gpt2tune train --method lora` from a base model served by the local Hub
mirror (olah), then push (upload mocked at HfApi), then generate, eval and verify from the adapter
folder and from the Hub repo it was pushed to, in a fresh cache.

The expected values are computed here from the saved tensors with plain torch and peft, not with
gpt2tune: which tensors changed, what merging must give, what greedy decoding must answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from conftest import SAMPLE_CSV
from hub_server import hub_env, serve_hub_repo, serve_hub_repos

from gpt2tune.cli import main

BASE_REPO, ADAPTER_REPO = "tester/tiny-gpt2", "tester/tiny-gpt2-lora"
R, ALPHA, LAYERS, WIDTH = 4, 8, 2, 64  # the tiny model: 2 layers, 64 wide (conftest.tiny_model_dir)
QUESTION = "How do I resume training?"
NEW_TOKENS = 24
ADAPTED = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """`gpt2tune train --method lora --merge-lora` in a subprocess, the base model downloaded from olah."""
    root = tmp_path_factory.mktemp("lora")
    base_hash = sha256(tiny_model_dir / "model.safetensors")
    with serve_hub_repo(tiny_model_dir, BASE_REPO, workdir=root / "hub-train") as endpoint:
        done = subprocess.run(
            [sys.executable, "-m", "gpt2tune", "train", "--method", "lora", "--merge-lora", "--base-model", BASE_REPO,
             "--output-dir", str(root / "out"), "--csv", str(SAMPLE_CSV), "--max-steps", "8", "--lr", "1e-2",
             "--batch-size", "4", "--max-length", "96", "--lora-r", str(R), "--lora-alpha", str(ALPHA),
             "--lora-dropout", "0", "--eval-steps", "4", "--save-steps", "4", "--eval-answer-samples", "0",
             "--logging-steps", "2", "--warmup-ratio", "0"],
            env={**os.environ, **hub_env(endpoint, root / "cache-train")}, capture_output=True, text=True,
            timeout=400, check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return root, root / "out", done, base_hash


@pytest.mark.slow
def test_lora_trains_the_adapters_and_leaves_the_base_alone(lora_run, tiny_model_dir):
    from safetensors.torch import load_file

    _, out, done, base_hash = lora_run
    per_layer = R * ((WIDTH + 3 * WIDTH) + (WIDTH + WIDTH) + (WIDTH + 4 * WIDTH) + (4 * WIDTH + WIDTH))
    assert "method: lora" in done.stdout and f"trainable_parameters: {LAYERS * per_layer}" in done.stdout
    assert f"LoRA adapters: training {LAYERS * per_layer:,} of" in done.stderr

    # The output is the adapter, not a full model: the base loads from the id in adapter_config.json.
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == BASE_REPO
    assert (config["r"], config["lora_alpha"], config["fan_in_fan_out"]) == (R, ALPHA, True)  # Conv1D
    assert sorted(config["target_modules"]) == ["c_attn", "c_fc", "c_proj"]

    # Only A and B matrices were saved, for every adapted layer; B starts at zero, so non-zero is trained.
    adapter = load_file(out / "adapter_model.safetensors")
    prefix = "base_model.model.transformer.h.{}.{}.lora_{}.weight"
    expected = {prefix.format(i, m, ab) for i in range(LAYERS) for m in ADAPTED for ab in "AB"}
    assert set(adapter) == expected
    assert all(adapter[prefix.format(i, m, "B")].abs().sum() > 0 for i in range(LAYERS) for m in ADAPTED)

    # The base model's file is untouched, and merging gives W + (alpha / r)·(B A)ᵀ (Conv1D stores W as in × out)
    # for the adapted weights, and exactly the base's values for everything else.
    assert sha256(tiny_model_dir / "model.safetensors") == base_hash
    base, merged = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "merged" / "model.safetensors")
    adapted = {f"transformer.h.{i}.{m}.weight" for i in range(LAYERS) for m in ADAPTED}
    for name, tensor in base.items():
        if name in adapted:
            i, module = name.split(".")[2], ".".join(name.split(".")[3:5])
            delta = (adapter[prefix.format(i, module, "B")] @ adapter[prefix.format(i, module, "A")]).T * (ALPHA / R)
            assert delta.abs().max() > 0
            assert (merged[name] - tensor - delta).abs().max() < 1e-5, name
        elif name in merged:
            assert merged[name].equal(tensor), name
    assert json.loads((out / "merged" / "config.json").read_text())["n_layer"] == LAYERS


@pytest.mark.slow
def test_push_generate_eval_and_verify_from_folder_and_hub(lora_run, tiny_model_dir, monkeypatch):
    import torch
    from huggingface_hub import HfApi, ModelCard
    from peft import PeftModel
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from gpt2tune.data.prompt import format_prompt

    root, out, _, _ = lora_run
    pushed = root / "pushed"

    def upload_folder(self, repo_id, folder_path, ignore_patterns=None, **kwargs):
        shutil.copytree(folder_path, pushed, ignore=lambda folder, names: [
            n for n in names if n in ("checkpoints", "merged", ".staging") or n.endswith(".tmp")])

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: f"https://hub/{repo_id}")
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    code, _, stderr = run_cli("push", "--model", out, "--repo-id", ADAPTER_REPO, "--token", "hf_test")
    assert code == 0, stderr
    card = ModelCard.load(pushed / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == BASE_REPO
    assert "LoRA adapters" in card.text and "AutoPeftModelForCausalLM" in card.text

    # What greedy decoding must answer, from the saved files with peft and plain transformers.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(tiny_model_dir), out).eval()
    encoded = tokenizer(format_prompt(QUESTION), return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=NEW_TOKENS, repetition_penalty=1.0,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    expected = tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert expected  # something to compare: an empty answer everywhere would prove nothing

    script = f"""
import sys
from gpt2tune.cli import main
for model in ({str(out)!r}, {ADAPTER_REPO!r}):
    print("generate", model, "exit code", main(["generate", "--model", model, "--question", {QUESTION!r},
          "--max-new-tokens", "{NEW_TOKENS}", "--repetition-penalty", "1.0"]), flush=True)
print("eval exit code", main(["eval", "--model", {ADAPTER_REPO!r}, "--csv", {str(SAMPLE_CSV)!r},
                              "--max-samples", "1", "--max-length", "64"]), flush=True)
print("verify exit code", main(["verify", "--model", {str(out)!r}, "--repo-id", {ADAPTER_REPO!r},
                                "--question", {QUESTION!r}]), flush=True)
"""
    cache = root / "cache-load"
    with serve_hub_repos({BASE_REPO: tiny_model_dir, ADAPTER_REPO: pushed}, root / "hub-load") as endpoint:
        done = subprocess.run([sys.executable, "-c", script], env={**os.environ, **hub_env(endpoint, cache)},
                              capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    # The adapter folder and the Hub repo answer what peft on the saved files answers.
    assert lines[0] == expected and lines[1] == f"generate {out} exit code 0"
    assert lines[2] == expected and lines[3] == f"generate {ADAPTER_REPO} exit code 0"
    assert "eval exit code 0" in done.stdout and f"{ADAPTER_REPO} on sample_qa.csv (200 rows)" in done.stdout
    assert "verify exit code 0" in done.stdout and f"round trip OK: {ADAPTER_REPO} matches" in done.stdout
    # Both really came over HTTP into the fresh cache: the adapter and, named by it, the base model.
    assert any(cache.rglob("adapter_model.safetensors")) and any(cache.rglob("model.safetensors"))


def test_resuming_needs_the_method_that_wrote_the_checkpoint(tmp_path):
    from gpt2tune.training.adapters import check_resume

    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    (checkpoint / "adapter_model.safetensors").write_bytes(b"")
    check_resume(checkpoint, "lora")
    with pytest.raises(ValueError, match="holds LoRA adapters; resume it with --method lora"):
        check_resume(checkpoint, "full")
    (checkpoint / "adapter_model.safetensors").unlink()
    with pytest.raises(ValueError, match="holds full weights; resume it with --method full"):
        check_resume(checkpoint, "lora")


@pytest.mark.parametrize("flags, message", [
    (["--method", "adapter"], "invalid choice: 'adapter'"),
    (["--method", "lora", "--lora-target-modules", "q_proj", "c_attn"],
     "lora_target_modules: q_proj not found in the model; its adaptable layers are c_attn, c_fc, c_proj, lm_head"),
])
def test_bad_lora_settings_are_one_line(tiny_model_dir, tmp_path, flags, message, capsys):
    argv = ["train", "--base-model", str(tiny_model_dir), "--output-dir", str(tmp_path / "out"), *flags]
    if "invalid choice" in message:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
        return
    code, _, err = run_cli(*argv)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # after any progress lines
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {message}")


def test_check_estimates_memory_for_both_methods(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    code, out, err = run_cli("check", "--base-model", tiny_model_dir, "--batch-size", "2", "--max-length", "64",
                             "--lora-r", R)
    assert code == 0, err
    model = GPT2LMHeadModel.from_pretrained(tiny_model_dir)
    total = sum(p.numel() for p in model.parameters())
    lora = get_peft_model(model, LoraConfig(r=R, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True))
    trainable = lora.get_nb_trainable_parameters()[0]
    section = out.split("== Training memory (estimate) ==")[1].strip().splitlines()
    assert section[0].startswith("batch size 2 × 64 tokens on cpu")
    full_line, lora_line = section[1], section[2]
    assert full_line.startswith("full: ") and f"trains {total:,} of {total:,} parameters" in full_line
    assert lora_line.startswith("lora: ") and f"trains {trainable:,} of {total:,} parameters" in lora_line
    gb = 2**30
    # full: 4 bytes of weight + 12 of gradient and AdamW moments per parameter; LoRA: those 12 only for its own
    assert f"weights {4 * total / gb:.2f} + gradients and optimizer {12 * total / gb:.2f}" in full_line
    assert f"gradients and optimizer {12 * trainable / gb:.2f}" in lora_line


@pytest.mark.slow
def test_lora_early_stopping_restores_the_best_adapters(tiny_model_dir, tmp_path):
    """The same Trainer path as full fine-tuning: on data where the eval loss rises by construction (held-out
    answers in words training never shows), early stopping ends the run and the best step's adapters (not
    the last ones) are saved."""
    from safetensors.torch import load_file

    from conftest import tiny_config, write_eval_loss_rises_csv
    from gpt2tune.runs import artifacts
    from gpt2tune.training.train import train

    events = []
    csv = write_eval_loss_rises_csv(tmp_path / "rises.csv", eval_fraction=0.25, seed=42)
    result = train(tiny_config(tiny_model_dir, tmp_path / "out", csv=str(csv), eval_fraction=0.25, seed=42,
                               method="lora", learning_rate=1e-2, max_steps=20, eval_steps=2, save_steps=2,
                               early_stopping_patience=2, eval_answer_samples=0, logging_steps=1, max_length=64),
                   on_event=events.append)
    evals = [(e.step, e.eval_loss) for e in events if e.kind == "eval"]
    best = min(evals, key=lambda point: point[1])[0]
    stopped_at = result.metrics["global_step"]
    assert result.metrics["best_step"] == best < stopped_at < 20 and result.metrics["stopped_early_reason"]
    saved = load_file(result.output_dir / "adapter_model.safetensors")
    checkpoints = result.output_dir / artifacts.CHECKPOINTS_DIR
    best_adapters = load_file(checkpoints / f"checkpoint-{best}" / "adapter_model.safetensors")
    assert saved.keys() == best_adapters.keys() and all(saved[n].equal(t) for n, t in best_adapters.items())
    last = load_file(checkpoints / f"checkpoint-{stopped_at}" / "adapter_model.safetensors")
    assert any(not saved[n].equal(t) for n, t in last.items())


@pytest.mark.slow
def test_lora_resume_continues_from_the_adapter_checkpoint(tiny_model_dir, tmp_path):
    from conftest import tiny_config
    from gpt2tune.runs import artifacts
    from gpt2tune.training.train import train

    settings = dict(method="lora", learning_rate=1e-2, save_steps=2, eval_steps=0, eval_answer_samples=0,
                    logging_steps=1, max_length=64)
    train(tiny_config(tiny_model_dir, tmp_path / "out", max_steps=4, **settings))
    checkpoint = tmp_path / "out" / artifacts.CHECKPOINTS_DIR / "checkpoint-4"
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()
    events = []
    resumed = train(tiny_config(tiny_model_dir, tmp_path / "out", max_steps=6, resume=True, **settings),
                    on_event=events.append)
    assert resumed.metrics["global_step"] == 6
    assert [e.step for e in events if e.kind == "log"][0] == 5  # continued after the checkpoint, not from step 1
    assert any(e.kind == "status" and e.message == f"resuming from {checkpoint}" for e in events)
