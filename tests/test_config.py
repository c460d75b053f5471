"""One config dataclass for CLI, app and tests: its flags, validation and persistence."""

import dataclasses

import pytest

from gpt2tune.cli import build_parser, config_from_args
from gpt2tune.config import TuneConfig


def test_every_setting_is_a_train_flag_with_its_default():
    args = build_parser().parse_args(["train"])
    assert config_from_args(TuneConfig, args) == TuneConfig()


def test_flags_reach_the_config():
    args = build_parser().parse_args(
        ["train", "--lr", "0.001", "--batch-size", "3", "--no-pack", "--max-steps", "7",
         "--probe-question", "A?", "--probe-question", "B?", "--question-column", "prompt"]
    )
    config = config_from_args(TuneConfig, args)
    assert (config.learning_rate, config.batch_size, config.pack, config.max_steps) == (0.001, 3, False, 7)
    assert config.probe_questions == ["A?", "B?"] and config.question_column == "prompt"


def test_every_field_has_help():
    for f in dataclasses.fields(TuneConfig):
        assert f.metadata.get("help"), f.name


def test_json_round_trip(tmp_path):
    config = TuneConfig(learning_rate=1e-4, probe_questions=["Why?"])
    config.save(tmp_path / "c.json")
    assert TuneConfig.load(tmp_path / "c.json") == config


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="unknown setting.*colour"):
        TuneConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize(
    "change, field",
    [({"eval_fraction": 1.0}, "eval_fraction"), ({"batch_size": 0}, "batch_size"),
     ({"precision": "fp8"}, "precision"), ({"epochs": 0, "max_steps": 0}, "epochs")],
)
def test_validation_names_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        TuneConfig(**change).validate()
