"""Loading, vocabulary checks and the device report."""

import pytest

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
    assert load_model(str(folder), allow_pickle=True) is not None


def test_device_report_on_cpu():
    report = inspect_devices()
    assert report.device in ("cpu", "cuda", "mps")
    assert report.cpu_threads >= 1
    assert "Chosen:" in report.summary()
    with pytest.raises(ValueError, match="not available"):
        inspect_devices("cuda" if not report.cuda_available else "mps")
