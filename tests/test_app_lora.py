"""The app's LoRA choice through its HTTP API (gradio_client): train, generate, push; and the Checks
tab's memory estimate for both methods. The app runs in this process (app_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_server import app_url  # noqa: F401  (a fixture)
from gradio_client import Client

QUICK = dict(question_column=None, answer_column=None, max_length=64, batch_size=4, learning_rate=1e-2,
             logging_steps=1, eval_steps=2, save_steps=2, warmup_ratio=0.0, eval_answer_samples=0)
QUESTION = "What is gpt2tune?"


@pytest.fixture(scope="module")
def client(app_url):  # noqa: F811
    return Client(app_url, verbose=False)


def test_checks_estimate_memory_for_full_and_lora(client, tiny_model_dir):
    verdict, report = client.predict(question_column=None, answer_column=None, base_model=str(tiny_model_dir),
                                     max_length=64, api_name="/checks")
    assert "Training memory" in verdict and "full / LoRA at batch size 8" in verdict
    rows = [line for line in report.splitlines() if line.startswith(("| full |", "| lora |"))]
    total = 3_382_080  # the tiny model's parameters (2 layers, 64 wide, GPT-2 vocabulary and context)
    lora = 2 * 8 * ((64 + 192) + (64 + 64) + (64 + 256) + (256 + 64))  # rank 8 on every Conv1D of 2 layers
    assert rows[0].startswith(f"| full | {total:,} | {4 * total / 2**30:.2f} GB | {12 * total / 2**30:.2f} GB |")
    assert rows[1].startswith(f"| lora | {lora:,} | {4 * (total + lora) / 2**30:.2f} GB | "
                              f"{12 * lora / 2**30:.2f} GB |")


@pytest.mark.slow
def test_lora_run_trains_generates_and_pushes(client, tiny_model_dir, monkeypatch):
    import torch
    from huggingface_hub import HfApi, ModelCard
    from peft import PeftModel
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from gpt2tune.data.prompt import format_prompt
    from gpt2tune.runs.store import run_dir

    job = client.submit(run_name="lora-run", max_steps=4, method="lora", lora_r=4, lora_alpha=8, merge_lora=True,
                        report_to="tensorboard", **QUICK, api_name="/train")
    list(job)
    status, _, metrics_html, metrics = job.outputs()[-1][:4]
    assert "Finished" in status and metrics["global_step"] == 4
    assert metrics["method"] == "lora" and metrics["trainable_parameters"] == 2 * 4 * (256 + 128 + 320 + 320)
    assert metrics["lora"] == {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["c_attn", "c_proj", "c_fc"],
                               "merged": True}
    folder = run_dir("lora-run")
    assert "Dashboard (tensorboard)" in metrics_html and str(folder / "logs" / "tensorboard") in metrics_html
    assert (folder / "adapter_model.safetensors").is_file() and not (folder / "model.safetensors").exists()
    assert (folder / "merged" / "model.safetensors").is_file()

    # The Generate tab answers with the adapter run as peft on the saved files does.
    answer, _ = client.predict(question=QUESTION, source="Trained run", run="lora-run", model_id="", compare=False,
                               max_new_tokens=12, repetition_penalty=1.0, seed=None, api_name="/generate")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(tiny_model_dir), folder).eval()
    encoded = tokenizer(format_prompt(QUESTION), return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=12, repetition_penalty=1.0,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    assert answer == tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    calls = {}

    def upload_folder(self, **kwargs):
        calls["upload"] = kwargs
        root = Path(kwargs["folder_path"])
        calls["card"] = (root / "README.md").read_text()

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: f"https://huggingface.co/{repo_id}")
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    result = client.predict(run="lora-run", repo_id="tester/faq-lora", token="hf_test", private=True, api_name="/push")
    assert "https://huggingface.co/tester/faq-lora" in result
    assert "merged/*" in calls["upload"]["ignore_patterns"]  # the adapter goes; merged weights are pushed apart
    card = ModelCard(calls["card"])
    assert card.data.library_name == "peft" and "lora" in card.data.tags
    assert card.data.base_model is None  # the base is a local folder here: nothing on the Hub to link to

    client.predict(run="lora-run", repo_id="tester/faq-merged", token="hf_test", private=True, merged=True,
                   api_name="/push")
    assert calls["upload"]["folder_path"] == str(folder / "merged")
    card = ModelCard(calls["card"])
    assert card.data.library_name == "transformers" and "Full weights with LoRA adapters merged in" in card.text


@pytest.mark.slow
def test_a_run_shown_again_fills_the_form_so_that_start_trains_the_same_lora(client, tiny_model_dir, capsys):
    """Lists, bools and auto values come back into the form as the form sends them; the run's summary
    shows the length the run used, in the words `check` prints."""
    from gpt2tune.cli import main
    from gpt2tune.ui.train_tab import FORM_NAMES

    quick = {**QUICK, "max_length": 0}  # auto
    job = client.submit(run_name="lora-first", max_steps=1, method="lora", lora_r=4, pack=False,
                        lora_target_modules="c_attn\nc_fc", **quick, api_name="/train")
    list(job)
    assert "Finished" in job.outputs()[-1][0]
    shown = client.predict("lora-first", api_name="/show_run")
    form = dict(zip(FORM_NAMES, shown[9:]))
    assert form["lora_target_modules"] == "c_attn\nc_fc" and form["pack"] is False and form["max_length"] == 0

    assert main(["check", "--base-model", str(tiny_model_dir)]) == 0
    length_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("max_length "))
    used = int(length_line.split()[1])
    assert used > 0 and f"max length {used} ·" in shown[8] and length_line in shown[8]

    again = {name: form[name] for name in ("method", "lora_r", "lora_target_modules", "pack", "max_length")}
    job = client.submit(run_name="lora-again", max_steps=1, **{**quick, **again}, api_name="/train")
    list(job)
    status, _, _, metrics = job.outputs()[-1][:4]
    assert "Finished" in status, status
    assert metrics["lora"]["target_modules"] == ["c_attn", "c_fc"]
