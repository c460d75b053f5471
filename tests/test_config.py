"""One config dataclass for CLI, app and tests: its flags, validation and persistence."""

import dataclasses

import pytest

from gpt2tune.cli import build_parser, config_from_args
from gpt2tune.config import GenerationSettings, TuneConfig

INF, NAN = float("inf"), float("nan")


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


# Every refusal of `validate`, once: (settings class, fields changed from the defaults, the whole line).
# The CLI and the app show this line as it is (test_cli_errors checks the CLI's exit code and output).
BAD_SETTINGS = [
    # ranges
    (TuneConfig, {"eval_fraction": 1.0}, "eval_fraction must be in [0, 1) (got 1.0)"),
    (TuneConfig, {"eval_fraction": -0.1}, "eval_fraction must be in [0, 1) (got -0.1)"),
    (TuneConfig, {"max_length": 4}, "max_length must be at least 8 tokens, or 0 for auto (got 4)"),
    (TuneConfig, {"learning_rate": 0}, "learning_rate must be greater than 0 (got 0)"),
    (TuneConfig, {"batch_size": 0}, "batch_size must be at least 1 (got 0)"),
    (TuneConfig, {"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be at least 1"),
    (TuneConfig, {"epochs": 0, "max_steps": 0}, "set epochs > 0 or max_steps > 0"),
    (TuneConfig, {"max_steps": -1}, "max_steps must be 0 or more (got -1)"),
    (TuneConfig, {"step_limit": -1}, "step_limit must be 0 or more (got -1)"),
    (TuneConfig, {"max_minutes": -1.0}, "max_minutes must be 0 or more (got -1.0)"),
    (TuneConfig, {"max_minutes": INF}, "max_minutes must be a finite number (got inf)"),
    (TuneConfig, {"epochs": -1.0, "max_steps": 5}, "epochs must be 0 or more (got -1.0)"),
    (TuneConfig, {"warmup_ratio": 1}, "warmup_ratio must be in [0, 1) (got 1)"),
    (TuneConfig, {"save_steps": -1}, "save_steps must be 0 or more (got -1)"),
    (TuneConfig, {"eval_steps": -5}, "eval_steps must be 0 or more (got -5)"),
    (TuneConfig, {"logging_steps": 0}, "logging_steps must be at least 1"),
    (TuneConfig, {"max_grad_norm": -1.0}, "max_grad_norm must be greater than 0 (got -1.0)"),
    (TuneConfig, {"weight_decay": -0.1}, "weight_decay must be 0 or more (got -0.1)"),
    (TuneConfig, {"save_total_limit": 0}, "save_total_limit must be at least 1"),
    (TuneConfig, {"save_minutes": -1.0}, "save_minutes must be 0 or more (got -1.0)"),
    (TuneConfig, {"eval_answer_samples": -1}, "eval_answer_samples must be 0 or more (got -1)"),
    (TuneConfig, {"early_stopping_patience": -1}, "early_stopping_patience must be 0 or more"),
    (TuneConfig, {"answer_scoring_seconds": -1.0}, "answer_scoring_seconds must be 0 (no limit) or more (got -1.0)"),
    # inf and nan pass comparisons the wrong way: refused first, by name
    (TuneConfig, {"learning_rate": INF}, "learning_rate must be a finite number (got inf)"),
    (TuneConfig, {"epochs": INF}, "epochs must be a finite number (got inf)"),
    (TuneConfig, {"epochs": NAN}, "epochs must be a finite number (got nan)"),
    (TuneConfig, {"warmup_ratio": INF}, "warmup_ratio must be a finite number (got inf)"),
    (TuneConfig, {"dropout": NAN}, "dropout must be a finite number (got nan)"),
    # seeds every library accepts
    (TuneConfig, {"seed": -1}, "seed must be 0 or more (got -1)"),
    (TuneConfig, {"seed": 2**32}, f"seed must be at most {2**32 - 1} (got {2**32})"),
    (TuneConfig, {"seed": 1.5}, "seed must be a whole number (got 1.5)"),
    # settings that need each other
    (TuneConfig, {"early_stopping_patience": 2, "eval_steps": 0},
     "early stopping needs an eval split and periodic evals: set eval_fraction > 0 and eval_steps > 0"),
    (TuneConfig, {"early_stopping_patience": 2, "eval_fraction": 0},
     "early stopping needs an eval split and periodic evals: set eval_fraction > 0 and eval_steps > 0"),
    (TuneConfig, {"merge_lora": True}, "merge_lora needs method lora (full fine-tuning already saves full weights)"),
    # choices
    (TuneConfig, {"precision": "fp8"}, "precision must be one of auto, bf16, fp16, fp32"),
    (TuneConfig, {"device": "tpu"}, "device must be one of auto, cuda, mps, cpu"),
    (TuneConfig, {"torch_compile": "sometimes"}, "torch_compile must be one of auto, on, off"),
    (TuneConfig, {"overlong": "cut"}, "overlong must be one of truncate, drop"),
    (TuneConfig, {"method": "adapter"}, "method must be one of full, lora"),
    (TuneConfig, {"answer_lists": "all"}, "answer_lists must be one of first, each"),
    # LoRA
    (TuneConfig, {"method": "lora", "lora_r": 0}, "lora_r must be at least 1 (got 0)"),
    (TuneConfig, {"method": "lora", "lora_alpha": 0}, "lora_alpha must be greater than 0 (got 0)"),
    (TuneConfig, {"method": "lora", "lora_dropout": 1.0}, "lora_dropout must be in [0, 1) (got 1.0)"),
    (TuneConfig, {"method": "lora", "lora_target_modules": [" ", ""]},
     "lora_target_modules is empty: name at least one layer, e.g. c_attn"),
    # generation
    (GenerationSettings, {"max_new_tokens": 0}, "max_new_tokens must be at least 1 (got 0)"),
    (GenerationSettings, {"temperature": 0}, "temperature must be greater than 0 (got 0)"),
    (GenerationSettings, {"temperature": INF}, "temperature must be a finite number (got inf)"),
    (GenerationSettings, {"top_p": 1.5}, "top_p must be in (0, 1] (got 1.5)"),
    (GenerationSettings, {"top_p": NAN}, "top_p must be a finite number (got nan)"),
    (GenerationSettings, {"top_k": -1}, "top_k must be 0 or more (got -1)"),
    (GenerationSettings, {"repetition_penalty": 0}, "repetition_penalty must be greater than 0 (got 0)"),
    (GenerationSettings, {"repetition_penalty": INF}, "repetition_penalty must be a finite number (got inf)"),
    (GenerationSettings, {"seed": -1}, "seed must be 0 or more (got -1)"),
    (GenerationSettings, {"weights": "int4"}, "weights must be one of fp32, int8, bf16 (got 'int4')"),
]


@pytest.mark.parametrize("settings, change, line", BAD_SETTINGS,
                         ids=[f"{cls.__name__}-{'-'.join(map(str, change.items()))}" for cls, change, _ in BAD_SETTINGS])
def test_validate_refuses_a_bad_setting_in_one_line_naming_it(settings, change, line):
    settings().validate()  # the defaults pass: the change alone is refused
    with pytest.raises(ValueError) as refused:
        settings(**change).validate()
    assert str(refused.value) == line
