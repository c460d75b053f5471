"""Secrets and untrusted models.

- The Hub token is used for the upload and shows up nowhere else: not in what the CLI prints, not in
  any log record, not in any file of the output folder or the Hugging Face cache, not in errors.
- A model's own Python code never runs (trust_remote_code stays off) and pickle weights are not
  unpickled unless explicitly allowed, and even then only plain tensors load.
- Repo ids are validated before anything is sent to the Hub.
Here only the Hub's upload boundary (`HfApi.create_repo` / `HfApi.upload_folder`) is mocked (the
whole suite's patches are listed in tests/README.md).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SAMPLE_CSV

TOKEN = "hf_FAKEsecretTokenDoNotLeak0123456789abcd"

# Runs in a fresh interpreter so that HF_HOME (read when huggingface_hub is imported) points at a
# folder of this test, and everything the process prints, at any log level, is captured.
TRAIN_AND_PUSH = textwrap.dedent("""
    import json, logging, os, sys, traceback
    import httpx
    import transformers, huggingface_hub
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from gpt2tune.cli import main

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    transformers.logging.set_verbosity_debug()
    huggingface_hub.logging.set_verbosity_debug()
    token, model, out, record = (os.environ["TEST_TOKEN"], sys.argv[1], sys.argv[2], sys.argv[3])
    seen = []

    def create_repo(self, repo_id, **kwargs):
        seen.append(self.token == token)
        return "https://huggingface.co/" + repo_id

    def upload_folder(self, repo_id, folder_path, **kwargs):
        seen.append(self.token == token)

    def rejected(self, repo_id, **kwargs):
        # What a real 401 can look like: the server echoes the request, token included.
        response = httpx.Response(401, request=httpx.Request("POST", "https://huggingface.co/api/repos/create"),
                                  text="Invalid credentials in Authorization header: Bearer " + token)
        raise HfHubHTTPError("401 Client Error: Unauthorized (token " + token + ")", response=response)

    HfApi.create_repo, HfApi.upload_folder = create_repo, upload_folder
    codes = {"train": main(["train", "--csv", sys.argv[4], "--base-model", model, "--output-dir", out,
                            "--max-steps", "3", "--batch-size", "2", "--max-length", "64", "--save-steps", "2",
                            "--eval-steps", "0", "--eval-answer-samples", "1", "--probe-question", "What is it?"])}
    codes["push_env_token"] = main(["push", "--model", out, "--repo-id", "tester/secure-gpt2"])
    codes["push_arg_token"] = main(["push", "--model", out, "--repo-id", "tester/secure-gpt2", "--token", token])
    HfApi.create_repo = rejected
    codes["push_401"] = main(["push", "--model", out, "--repo-id", "tester/secure-gpt2"])
    try:
        main(["--debug", "push", "--model", out, "--repo-id", "tester/secure-gpt2"])
    except ValueError:
        traceback.print_exc()  # what a user sees with --debug
    with open(record, "w") as f:
        json.dump({"codes": codes, "token_reached_hub": seen}, f)
""")


def files_holding(root: Path, secret: bytes) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and secret in path.read_bytes()]


@pytest.mark.slow
def test_token_never_leaks_from_train_and_push(tiny_model_dir, tmp_path):
    out, hf_home, record = tmp_path / "out", tmp_path / "hf-home", tmp_path / "record.json"
    env = {**os.environ, "HF_TOKEN": TOKEN, "TEST_TOKEN": TOKEN, "HF_HOME": str(hf_home),
           "HF_HUB_CACHE": str(hf_home / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", TRAIN_AND_PUSH, str(tiny_model_dir), str(out), str(record),
                           str(SAMPLE_CSV)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(record.read_text())
    assert result["codes"] == {"train": 0, "push_env_token": 0, "push_arg_token": 0, "push_401": 2}
    assert result["token_reached_hub"] == [True] * 4  # the token was used where it belongs...

    assert "push to tester/secure-gpt2 failed: the Hub rejected the token (401)" in done.stderr
    assert "DEBUG" in done.stderr and "Traceback" in done.stderr  # logs and the --debug traceback were captured
    assert TOKEN not in done.stdout and TOKEN not in done.stderr  # ...and nowhere else
    assert TOKEN[3:20] not in done.stdout + done.stderr  # not even a fragment
    assert (out / "model.safetensors").exists() and (out / "README.md").exists()
    assert files_holding(tmp_path, TOKEN.encode()) == []  # output folder, checkpoints, card, HF cache


def test_model_code_never_runs(tiny_model_dir, tmp_path):
    """A model folder whose config asks for its own Python classes (auto_map): we load the built-in
    GPT-2 classes and the folder's code is never imported."""
    from gpt2tune.cli import main
    from gpt2tune.model import load_model, load_tokenizer

    folder, marker = tmp_path / "remote-code", tmp_path / "REMOTE_CODE_RAN"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "evil.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("ran")
        from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
        class EvilConfig(GPT2Config): pass
        class EvilModel(GPT2LMHeadModel): config_class = EvilConfig
        class EvilTokenizer(GPT2TokenizerFast): pass
    """))
    for name, auto_map in [("config.json", {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}),
                           ("tokenizer_config.json", {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]})]:
        settings = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**settings, "auto_map": auto_map}))

    assert type(load_model(str(folder))).__name__ == "GPT2LMHeadModel"
    load_tokenizer(str(folder))
    assert main(["generate", "--model", str(folder), "--question", "hi", "--max-new-tokens", "2"]) == 0
    assert not marker.exists()


class _RunsCode:
    """Unpickling this writes a file: what a malicious pytorch_model.bin can do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "pickle ran")


def test_pickle_weights_are_not_unpickled(tiny_model_dir, tmp_path):
    import torch

    from gpt2tune.model import load_model

    marker = tmp_path / "PICKLE_RAN"
    both = tmp_path / "both"
    shutil.copytree(tiny_model_dir, both)
    torch.save({"weights": _RunsCode(marker)}, both / "pytorch_model.bin")
    from safetensors.torch import load_file

    loaded = load_model(str(both))  # safetensors beside a pickle: the safetensors load
    assert torch.equal(loaded.transformer.wte.weight, load_file(both / "model.safetensors")["transformer.wte.weight"])

    pickle_only = tmp_path / "pickle-only"
    shutil.copytree(tiny_model_dir, pickle_only, ignore=shutil.ignore_patterns("*.safetensors"))
    shutil.copy(both / "pytorch_model.bin", pickle_only)
    with pytest.raises(ValueError, match="holds only pickle"):
        load_model(str(pickle_only))
    # Allowed, pickles still load with torch's weights_only: only tensors, never code.
    with pytest.raises(ValueError, match="hold objects other than tensors"):
        load_model(str(pickle_only), allow_pickle=True)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the file really is hostile
        torch.load(pickle_only / "pytorch_model.bin", weights_only=True)


@pytest.mark.parametrize("repo_id", ["../x", "a/b/c", "", "   ", "user/my model", "us er/model", "user/",
                                     "/model", "user/..", "user/name.git", "user\\name", "user/na\nme"])
def test_bad_repo_ids_never_reach_the_hub(repo_id, tiny_model_dir, monkeypatch):
    from huggingface_hub import HfApi

    from gpt2tune.hub.push import push_to_hub

    def forbidden(*args, **kwargs):
        raise AssertionError("the Hub must not be contacted")

    monkeypatch.setattr(HfApi, "create_repo", forbidden)
    monkeypatch.setattr(HfApi, "upload_folder", forbidden)
    with pytest.raises(ValueError, match="is not of the form user/name"):
        push_to_hub(tiny_model_dir, repo_id, token=TOKEN)


@pytest.mark.parametrize("repo_id", ["user/model", "Org-1/gpt2_faq.v2", "a/b"])
def test_good_repo_ids_are_kept(repo_id):
    from gpt2tune.references import validate_repo_id

    assert validate_repo_id(f"  {repo_id} ") == repo_id
