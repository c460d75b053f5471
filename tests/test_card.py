"""The model card written at the end of training: valid Hub metadata, the facts of the run, no secrets."""

import shutil

import pytest

from huggingface_hub import ModelCard

from gpt2tune.runs import artifacts
from gpt2tune.hub.card import CARD_FILE, LOSS_PLOT_FILE, is_generated_card, write_model_card


@pytest.mark.slow
def test_training_writes_a_card_the_hub_parses(trained_run):
    result, _, config = trained_run
    card = ModelCard.load(result.output_dir / CARD_FILE)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-generation"
    assert data["license"] == "mit"
    assert "base_model" not in data  # a local folder is not a Hub id
    metrics = artifacts.read_json(result.output_dir / artifacts.METRICS_FILE)
    results = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert results["f1"] == round(metrics["answer_f1"], 4)
    assert results["perplexity"] == round(metrics["perplexity"], 4)

    text = card.text
    assert metrics["dataset"]["sha256"] in text and len(metrics["dataset"]["sha256"]) == 64
    assert f"rows after cleaning: {metrics['dataset']['rows']}" in text
    assert "Question: {question}" in text  # the prompt template
    assert f"| learning_rate | {config.learning_rate:.6g} |" in text
    assert metrics["memorisation"]["verdict"] in text
    assert f"]({LOSS_PLOT_FILE})" in text
    assert (result.output_dir / LOSS_PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sample = artifacts.read_json(result.output_dir / "samples.json")[0]
    assert sample["question"] in text
    assert is_generated_card(result.output_dir / CARD_FILE)


@pytest.mark.slow
def test_hub_base_model_repo_id_and_no_secret(trained_run, tmp_path, monkeypatch):
    result, _, _ = trained_run
    secret = "hf_" + "x" * 34
    monkeypatch.setenv("HF_TOKEN", secret)
    folder = tmp_path / "copy"
    shutil.copytree(result.output_dir, folder, ignore=shutil.ignore_patterns("checkpoints", "*.safetensors"))
    # the card names the base model the run resolved (as a model folder from the Hub records it)
    (folder / artifacts.RUN_FILE).unlink()
    saved = artifacts.read_json(folder / artifacts.CONFIG_FILE)
    saved["resolved"]["base_model"] = "openai-community/gpt2"
    artifacts.write_json(folder / artifacts.CONFIG_FILE, saved)
    path = write_model_card(folder, repo_id="someone/my-model")
    card = ModelCard.load(path)
    assert card.data.base_model == "openai-community/gpt2"
    assert card.data.to_dict()["model-index"][0]["name"] == "someone/my-model"
    assert 'from_pretrained("someone/my-model")' in card.text
    assert secret not in path.read_text()
    assert str(tmp_path) not in path.read_text()  # local paths stay out of a public card


def test_hand_written_card_is_not_ours(tmp_path):
    (tmp_path / CARD_FILE).write_text("# My model\n")
    assert not is_generated_card(tmp_path / CARD_FILE)
    assert not is_generated_card(tmp_path / "missing.md")
