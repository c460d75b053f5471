"""Loading, vocabulary checks and the device report."""

import pytest
from conftest import auto_device

from gpt2tune.device import inspect_devices
from gpt2tune.model import check_and_fix_vocabulary, load_model, load_model_and_tokenizer, load_tokenizer
from gpt2tune.paths import TOKENIZER_DIR


def test_bundled_tokenizer_is_real_gpt2():
    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    assert len(tokenizer) == 50257
    assert tokenizer.eos_token_id == 50256
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert tokenizer.pad_token == tokenizer.eos_token  # set by us: GPT-2 ships without one


def test_vocab_sizes_agree_on_tiny_model(tiny_model_dir):
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    report = check_and_fix_vocabulary(model, tokenizer)
    assert report.tokenizer_size == report.embedding_rows == 50257
    assert report.pad_is_eos and "match" in report.action


def test_added_tokens_grow_the_embeddings(tiny_model_dir):
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|sep|>"]})
    report = check_and_fix_vocabulary(model, tokenizer)
    assert report.embedding_rows_before == 50257 and report.embedding_rows == 50258
    assert "resized" in report.action
    assert model.get_output_embeddings().weight.shape[0] == 50258


def test_dropout_override(tiny_model_dir):
    model = load_model(str(tiny_model_dir), dropout=0.25)
    assert model.config.resid_pdrop == model.config.attn_pdrop == 0.25


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model(str(tmp_path / "nope"))


def test_pickle_only_folder_refused(tiny_model_dir, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    # transformers 5 only writes safetensors, so make the old-style pickle checkpoint by hand.
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder)
    torch.save(load_file(tiny_model_dir / "model.safetensors"), folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickle"):
        load_model(str(folder))
    allowed = load_model(str(folder), allow_pickle=True)
    expected = load_file(tiny_model_dir / "model.safetensors")
    assert torch.equal(allowed.transformer.wte.weight, expected["transformer.wte.weight"])


def test_device_report_follows_the_machine():
    import torch

    report = inspect_devices()
    assert report.device == auto_device()
    assert report.cpu_threads == torch.get_num_threads()
    assert f"Chosen: {report.device} with {report.precision}" in report.summary()
    with pytest.raises(ValueError, match="not available"):
        inspect_devices("cuda" if not report.cuda_available else "mps")


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_the_probe_goes_through_the_proxy(monkeypatch):
    """In-process and fast: a fresh huggingface_hub session reads HTTPS_PROXY, and the probe uses it."""
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    from gpt2tune.model import hub_unreachable_reason

    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    close_session()  # the next request builds a session from the environment above
    try:
        assert hub_unreachable_reason(timeout_s=2) == (
            "could not connect to https://huggingface.co through the proxy set in HTTPS_PROXY: ConnectError")
    finally:
        monkeypatch.undo()
        close_session()


@pytest.mark.slow
def test_unreachable_proxy_gives_one_line_from_the_probe(tmp_path):
    """Behind a proxy that does not answer, loading a Hub id fails with the probe's reason (the probe runs
    before any download, so none of transformers' ~30 s of retries per file), not with a TCP probe that
    ignores the proxy and says "reachable"."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "NO_PROXY", "no_proxy")}
    env.update(HTTPS_PROXY=f"http://user:secret@127.0.0.1:{_closed_port()}", HF_HOME=str(tmp_path / "hf"),
               HF_ENDPOINT="https://huggingface.co")
    done = subprocess.run([sys.executable, "-m", "gpt2tune", "generate", "--model", "someone/some-model",
                           "--question", "hi"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == ""  # the network failed, not the input
    assert done.stderr.strip().splitlines() == [
        "error: could not load 'someone/some-model': the Hugging Face Hub is unreachable (could not connect to "
        "https://huggingface.co through the proxy set in HTTPS_PROXY: ConnectError) and the model is not in the "
        "local cache; connect to the internet, give a local model folder, or pass --offline-fallback (train, check) "
        "to use the offline tiny model"
    ]
    assert "secret" not in done.stderr


def test_offline_mode_is_named(monkeypatch):
    from huggingface_hub import constants

    from gpt2tune.model import hub_unreachable_reason

    monkeypatch.setattr(constants, "is_offline_mode", lambda: True)
    assert hub_unreachable_reason() == "offline mode is on: HF_HUB_OFFLINE is set"
