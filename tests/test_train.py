"""Training end to end on the tiny model: real loss, real updates, real files."""

import threading

import pytest
from safetensors.torch import load_file

from conftest import tiny_config
from gpt2tune.runs import artifacts


@pytest.mark.slow
def test_loss_is_logged_and_falls(trained_run):
    result, events, _ = trained_run
    losses = [e.loss for e in events if e.kind == "log"]
    assert len(losses) >= 4
    assert losses[-1] < losses[0] - 0.2
    assert any(e.kind == "eval" for e in events)
    assert events[-1].kind == "done"


@pytest.mark.slow
def test_every_weight_of_a_full_fine_tune_changes(trained_run, tiny_model_dir):
    result, _, _ = trained_run
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(result.output_dir / "model.safetensors")
    assert after.keys() == before.keys()
    assert [name for name in before if before[name].equal(after[name])] == []  # none frozen, none skipped


@pytest.mark.slow
def test_output_folder_is_complete_and_reloadable(trained_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, _, config = trained_run
    out = result.output_dir
    metrics = artifacts.read_json(out / artifacts.METRICS_FILE)
    for key in ("train_runtime", "train_real_tokens", "train_loss", "eval_loss", "perplexity"):
        assert key in metrics, key
    assert metrics["global_step"] == config.max_steps
    assert artifacts.read_json(out / artifacts.CONFIG_FILE)["learning_rate"] == config.learning_rate
    assert len(artifacts.read_json(out / artifacts.HISTORY_FILE)) >= 4
    assert not (out / ".staging").exists()
    assert not (out / "training_args.bin").exists()
    AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)


@pytest.mark.slow
def test_real_tokens_match_what_was_trained(trained_run):
    """train_real_tokens counts non-pad tokens of the rows actually fed, not padded widths."""
    result, events, config = trained_run
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.model import load_tokenizer
    from gpt2tune.data.prep import prepare_datasets, split_frame

    tokenizer = load_tokenizer(config.base_model)
    train_frame, eval_frame = split_frame(load_qa_data(config.csv).frame, config.eval_fraction, config.seed)
    train_set, _, _ = prepare_datasets(train_frame, eval_frame, tokenizer, config.max_length, True, True)
    row_tokens = sorted(len(r) for r in train_set["input_ids"])
    steps_rows = config.max_steps * config.batch_size
    real = result.metrics["train_real_tokens"]
    # Between the shortest and the longest rows that many steps could have drawn.
    assert sum(row_tokens[:steps_rows]) <= real <= sum(row_tokens[-steps_rows:])


@pytest.mark.slow
def test_stop_saves_a_usable_model(tiny_model_dir, tmp_path):
    stop = threading.Event()

    def on_event(event):
        if event.kind == "log" and event.step >= 2:
            stop.set()

    from gpt2tune.training.train import train

    from gpt2tune.config import GenerationSettings
    from gpt2tune.generate import ModelCache, answer
    from test_app import greedy_by_hand

    out = tmp_path / "out"
    config = tiny_config(tiny_model_dir, out, max_steps=50, eval_steps=0, save_steps=0)
    result = train(config, on_event=on_event, stop_event=stop)
    assert result.stopped_early
    assert 2 <= result.metrics["global_step"] < 50
    # The folder holds what training did before the stop (not the base weights) ...
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not before[name].equal(after[name]) for name in before)
    # ... and loads as the generate command loads it, answering as plain transformers decodes that folder.
    model, tokenizer = ModelCache().get(str(out))
    question = "How do I resume training?"
    assert answer(model, tokenizer, question, GenerationSettings(max_new_tokens=12)) == greedy_by_hand(out, question, 12)
