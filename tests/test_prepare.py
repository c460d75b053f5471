"""The one set-up before training (`training.prepare`): what `check` reports is what `train` uses,
and the data is tokenized once."""

import pytest
from conftest import SAMPLE_CSV, tiny_config


def test_check_tokenizes_every_row_once_and_reports_the_same_numbers(tiny_model_dir, tmp_path, monkeypatch):
    from gpt2tune.data import prep
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.data.report import dataset_report
    from gpt2tune.model import load_tokenizer
    from gpt2tune.training.prepare import prepare

    encoded_texts = []
    real_encode = prep.encode_text
    monkeypatch.setattr(prep, "encode_text", lambda tokenizer, texts: encoded_texts.extend(texts) or
                        real_encode(tokenizer, texts))
    config = tiny_config(tiny_model_dir, tmp_path / "out", max_length=64)
    prepared = prepare(config)
    rows = len(load_qa_data(SAMPLE_CSV).frame)
    assert rows == 200 and len(encoded_texts) == 2 * rows  # each prompt and each answer, once

    monkeypatch.setattr(prep, "encode_text", real_encode)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    frame = load_qa_data(SAMPLE_CSV).frame
    alone = dataset_report(frame, tokenizer, 64, config.eval_fraction, config.seed)
    assert prepared.dataset.token_lengths == alone.token_lengths
    assert prepared.dataset.over_max_length == alone.over_max_length
    train_frame, eval_frame = prep.split_frame(frame, config.eval_fraction, config.seed)
    train_set, eval_set, report = prep.prepare_datasets(train_frame, eval_frame, tokenizer, 64, True, True)
    assert prepared.train_set["input_ids"] == train_set["input_ids"]
    assert prepared.eval_set["labels"] == eval_set["labels"]
    assert (prepared.prep.train_examples, prepared.prep.truncated) == (report.train_examples, report.truncated)
    assert prepared.train_frame.equals(train_frame) and prepared.eval_frame.equals(eval_frame)


def test_check_writes_nothing(tiny_model_dir, tmp_path):
    from gpt2tune.training.checks import run_checks

    report = run_checks(tiny_config(tiny_model_dir, tmp_path / "out"))
    # tiny GPT-2: token + position embeddings, 2 blocks of width 64 (LN, attention, LN, 4x MLP), final LN
    block = 2 * 128 + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64)
    assert report.base_model == str(tiny_model_dir)
    assert report.parameters == 50257 * 64 + 1024 * 64 + 2 * block + 128
    assert not (tmp_path / "out").exists()  # no token cache, no output folder: a check only reads


def test_a_rerun_on_the_same_file_reads_every_stage_from_the_cache(tiny_model_dir, tmp_path, monkeypatch):
    """The second training set-up on an unchanged file neither cleans, tokenizes nor measures it again,
    and what it reads back is what the first run computed; one changed byte starts over."""
    import shutil

    import gpt2tune.data.load as load
    import gpt2tune.data.report as report
    from gpt2tune.data import prep
    from gpt2tune.training.prepare import prepare

    csv = tmp_path / "qa.csv"
    shutil.copy(SAMPLE_CSV, csv)
    config = tiny_config(tiny_model_dir, tmp_path / "runs" / "one", csv=str(csv), max_length=0)
    first = prepare(config, output_dir=config.output_dir)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached stage ran again")

    real = {"load": load.load_source, "encode": prep.encode_text, "report": report.dataset_report}
    monkeypatch.setattr(load, "load_source", must_not_run)
    monkeypatch.setattr(prep, "encode_text", must_not_run)
    monkeypatch.setattr(report, "dataset_report", must_not_run)
    again = prepare(config, output_dir=tmp_path / "runs" / "two")  # another run beside it shares the cache
    assert again.data.frame["question"].tolist() == first.data.frame["question"].tolist()
    assert again.data.frame["answer"].tolist() == first.data.frame["answer"].tolist()
    assert again.data.report == first.data.report and again.data.report.summary() == first.data.report.summary()
    assert again.dataset.to_dict() == first.dataset.to_dict()
    assert again.dataset.summary() == first.dataset.summary()
    assert again.config.max_length == first.config.max_length and again.prep.from_cache
    assert again.train_set["input_ids"] == first.train_set["input_ids"]

    csv.write_text(csv.read_text().replace("?", "?!", 1))  # one byte more: nothing may be served stale
    monkeypatch.setattr(load, "load_source", real["load"])
    with pytest.raises(AssertionError, match="cached stage ran again"):
        prepare(config, output_dir=tmp_path / "runs" / "three")
