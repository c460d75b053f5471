"""End-to-end check of tests/hub_server.py: load a tiny GPT-2 by repo id over real HTTP.

The model is served by olah (offline Hub mirror) on 127.0.0.1; loading happens in a
subprocess whose environment comes from ``hub_env`` (huggingface_hub reads
HF_ENDPOINT & co. at import time, so the variables must be set before import).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

try:
    from hub_server import hub_env, serve_hub_repo
except ImportError:  # tests/ imported as a package
    from tests.hub_server import hub_env, serve_hub_repo

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = REPO_ROOT / "assets" / "gpt2-tokenizer"
REPO_ID = "tester/tiny-gpt2"
TEXT = "Hello world"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if not TOKENIZER_DIR.is_dir():
        pytest.skip(f"GPT-2 tokenizer assets missing at {TOKENIZER_DIR}")
    out = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=128, vocab_size=50257)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    tokenizer.save_pretrained(out)
    assert (out / "model.safetensors").is_file()
    return out


@pytest.fixture(scope="module")
def hub(tiny_model_dir, tmp_path_factory) -> str:
    with serve_hub_repo(tiny_model_dir, REPO_ID, workdir=tmp_path_factory.mktemp("hub")) as endpoint:
        yield endpoint


def _run_with_hub(code: str, endpoint: str, cache_dir: Path, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter with hub_env; it must print one JSON line last."""
    env = {**os.environ, **hub_env(endpoint, cache_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"subprocess failed:\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_transformers_loads_model_and_tokenizer_by_repo_id(hub, tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    cache_dir = tmp_path / "hf-home"
    dump = tmp_path / "state_dict.pt"
    result = _run_with_hub(
        f"""
        import json, torch
        from huggingface_hub import constants
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({REPO_ID!r})
        tok = AutoTokenizer.from_pretrained({REPO_ID!r})
        torch.save({{k: v.detach().clone() for k, v in model.state_dict().items()}}, {str(dump)!r})
        print(json.dumps({{
            "endpoint": constants.ENDPOINT,
            "hub_cache": constants.HF_HUB_CACHE,
            "model_class": type(model).__name__,
            "ids": tok({TEXT!r})["input_ids"],
            "decoded": tok.decode(tok({TEXT!r})["input_ids"]),
        }}))
        """,
        hub,
        cache_dir,
    )
    assert result["endpoint"] == hub
    assert result["hub_cache"] == str(cache_dir / "hub")
    assert result["model_class"] == "GPT2LMHeadModel"

    # Downloaded into the fresh cache as a Hub snapshot, i.e. really over HTTP.
    snapshots = list((cache_dir / "hub" / "models--tester--tiny-gpt2" / "snapshots").iterdir())
    assert len(snapshots) == 1
    assert (snapshots[0] / "model.safetensors").is_file()

    # Weights identical to the local files.
    local = load_file(tiny_model_dir / "model.safetensors")
    remote = torch.load(dump)
    for key, tensor in local.items():
        assert torch.equal(remote[key], tensor), key
    assert torch.equal(remote["lm_head.weight"], local["transformer.wte.weight"])  # tied

    # Tokenizer identical to the local one.
    local_ids = AutoTokenizer.from_pretrained(tiny_model_dir)(TEXT)["input_ids"]
    assert result["ids"] == local_ids == [15496, 995]
    assert result["decoded"] == TEXT


def test_snapshot_download(hub, tiny_model_dir, tmp_path):
    cache_dir = tmp_path / "hf-home"
    result = _run_with_hub(
        f"""
        import json, os
        from huggingface_hub import snapshot_download
        path = snapshot_download({REPO_ID!r})
        print(json.dumps({{"path": path, "files": sorted(os.listdir(path))}}))
        """,
        hub,
        cache_dir,
    )
    path = Path(result["path"])
    assert path.is_relative_to(cache_dir)
    local_files = sorted(p.name for p in tiny_model_dir.iterdir())
    assert result["files"] == local_files
    for name in local_files:
        assert (path / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name


def _request(url: str, method: str = "GET") -> tuple[int, dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=60) as resp:  # a busy machine may be slow to answer
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def test_missing_entries_are_404_entry_not_found(hub):
    """Regression test for the offline-metadata seeding: without it olah answers
    401 RepoNotFound here and transformers' optional-file probes blow up."""
    status, headers = _request(f"{hub}/{REPO_ID}/resolve/main/added_tokens.json", "HEAD")
    assert (status, headers.get("x-error-code")) == (404, "EntryNotFound")
    status, headers = _request(f"{hub}/api/models/{REPO_ID}/tree/main/additional_chat_templates")
    assert (status, headers.get("x-error-code")) == (404, "EntryNotFound")
    status, _ = _request(f"{hub}/api/models/{REPO_ID}")
    assert status == 200
    status, headers = _request(f"{hub}/{REPO_ID}/resolve/main/config.json", "HEAD")
    assert status == 200 and headers.get("x-repo-commit")


def test_server_is_stopped_on_exit(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "gpt2"}')
    with serve_hub_repo(model_dir, "someone/other", workdir=tmp_path / "hub") as endpoint:
        status, _ = _request(f"{endpoint}/someone/other/resolve/main/config.json")
        assert status == 200
    port = urllib.parse.urlsplit(endpoint).port
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "olah still listening after exit"
