"""One home for every default: the CLI, the app and the tests all build a TuneConfig.

Each field carries its help text in `metadata`, so the CLI flags and the UI labels are derived
from this file instead of being written out a second time.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from gpt2tune.paths import SAMPLE_CSV

LORA_TARGET_MODULES = ("c_attn", "c_proj", "c_fc")  # every Conv1D in a GPT-2 block
REPORT_TO = ("none", "tensorboard", "trackio")
WEIGHT_FORMATS = ("fp32", "int8", "bf16")  # for answering (gpt2tune.generation_weights); never for training


def _opt(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class GenerationSettings:
    """How answers are decoded. Greedy by default: deterministic, best for checking a fine-tune."""

    max_new_tokens: int = _opt(128, "Most tokens to generate for one answer.")
    do_sample: bool = _opt(False, "Sample instead of greedy decoding.")
    temperature: float = _opt(0.7, "Sampling temperature (only with sampling).")
    top_p: float = _opt(0.9, "Nucleus sampling probability mass (only with sampling).")
    top_k: int = _opt(50, "Sample among the k likeliest tokens (0 = no limit; only with sampling).")
    repetition_penalty: float = _opt(1.1, "Penalty > 1 discourages repeating tokens.")
    seed: int | None = _opt(None, "Seed for sampling, for reproducible samples.")
    weights: str = _opt("fp32", "Weights to answer with on a CPU: fp32 (as trained), int8 (a quarter of the bytes: "
                        "GPT-2 124M decodes about 2x faster on a CPU; answers may differ a little) or bf16 (for CPUs "
                        "with AMX).", choices=WEIGHT_FORMATS)

    def validate(self) -> None:
        _check_finite(self)
        _check_seed(self.seed)
        if self.weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)} (got {self.weights!r})")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1 (got {self.max_new_tokens})")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be greater than 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            raise ValueError(f"top_k must be 0 or more (got {self.top_k})")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be greater than 0 (got {self.repetition_penalty})")


@dataclass
class TuneConfig:
    # --- data -------------------------------------------------------------------------------
    csv: str = _opt(str(SAMPLE_CSV), "CSV (or TSV/JSON/JSONL) file with question and answer columns.")
    dataset: str | None = _opt(None, "Hugging Face Hub dataset id (user/name) to train on instead of the file.")
    dataset_config: str | None = _opt(None, "Configuration (subset) of the Hub dataset, if it has several.")
    dataset_split: str | None = _opt(None, "Split of the Hub dataset to use (default: train, or its only split).")
    dataset_revision: str | None = _opt(None, "Branch, tag or commit of the Hub dataset (default: main).")
    hub_token: bool = _opt(True, "Send the Hugging Face token (HF_TOKEN, the cached login) when reading the Hub "
                           "dataset; off reads it as an anonymous user would (the app does so for its visitors).")
    hub_cache_dir: str | None = _opt(None, "Folder the Hub dataset is downloaded into and removed from once read "
                                     "(default: the datasets library's lasting cache).")
    question_column: str | None = _opt(None, "Column holding the questions (default: detected).")
    answer_column: str | None = _opt(None, "Column holding the answers (default: detected).")
    eval_fraction: float = _opt(0.1, "Fraction of rows held out for evaluation (0 = no eval).")
    seed: int = _opt(42, "Seed for the split, data order and initialisation.")
    max_length: int = _opt(
        0, "Longest example in tokens (0 = auto: the smallest multiple of 64 that fits 99% of examples, "
        "at most the model's context).", auto=True)
    overlong: str = _opt("truncate", "Examples longer than max_length: truncate (no end-of-text token at the cut) "
                         "or drop.", choices=("truncate", "drop"))
    answer_lists: str = _opt("first", "A list of answers in a cell (JSON/JSONL): train on the first, or one example "
                             "per answer; every answer is a reference for scoring.", choices=("first", "each"))
    strip_html: bool = _opt(False, "Remove HTML tags from questions and answers (entities decoded).")
    # --- model and output -------------------------------------------------------------------
    base_model: str = _opt("gpt2", "Hub id or local folder of the pre-trained GPT-2 to fine-tune.")
    output_dir: str = _opt("runs/latest", "Folder the fine-tuned model, metrics and checkpoints go to.")
    allow_pickle: bool = _opt(False, "Allow loading .bin (pickle) weights; only for models you trust.")
    # --- what the model learns --------------------------------------------------------------
    train_on_answers_only: bool = _opt(True, "Compute the loss on answer tokens only (question masked).")
    pack: bool = _opt(True, "Pack several examples per row, attention isolated per example.")
    # --- method: all weights, or LoRA adapters beside frozen weights -----------------------
    method: str = _opt("full", "Fine-tune all weights (full) or train small LoRA adapters beside the frozen "
                       "weights (lora: less memory, a small output; often wants a higher learning rate, e.g. 2e-4).",
                       choices=("full", "lora"))
    lora_r: int = _opt(8, "LoRA rank: the adapters' inner size (only with method lora).")
    lora_alpha: int = _opt(16, "LoRA alpha: the adapters' update is scaled by alpha / r (only with method lora).")
    lora_dropout: float = _opt(0.05, "Dropout on the adapters' input (only with method lora).")
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(LORA_TARGET_MODULES),
        metadata={"help": "Layers that get adapters (GPT-2: c_attn attention in, c_proj attention and MLP out, "
                          "c_fc MLP in; only with method lora)."},
    )
    merge_lora: bool = _opt(False, "Also save full weights with the adapters merged in, under merged/ "
                            "(only with method lora).")
    # --- optimisation -----------------------------------------------------------------------
    learning_rate: float = _opt(5e-5, "Peak learning rate.")
    batch_size: int = _opt(8, "Rows per step per device (a row packs up to max_length tokens).")
    gradient_accumulation_steps: int = _opt(1, "Steps whose gradients are summed before an update.")
    epochs: float = _opt(3.0, "Passes over the training set (ignored when max_steps > 0).")
    max_steps: int = _opt(0, "Stop after this many optimizer steps (0 = use epochs).")
    step_limit: int = _opt(0, "Train at most this many optimizer steps, whatever epochs or max_steps say "
                           "(0 = no limit; a public app sets it for its visitors' runs).")
    max_minutes: float = _opt(0.0, "Stop after this many minutes of each start or resume, saving the model and a "
                              "checkpoint as a stop does (0 = no limit).")
    warmup_ratio: float = _opt(0.05, "Fraction of steps spent warming the learning rate up.")
    weight_decay: float = _opt(0.0, "AdamW weight decay.")
    lr_scheduler: str = _opt("linear", "Learning-rate schedule.", choices=("linear", "cosine", "constant"))
    dropout: float = _opt(0.0, "Dropout during fine-tuning (0 is common and faster).")
    max_grad_norm: float = _opt(1.0, "Gradient clipping norm.")
    # --- hardware ---------------------------------------------------------------------------
    device: str = _opt("auto", "Device to train on.", choices=("auto", "cuda", "mps", "cpu"))
    precision: str = _opt("auto", "Numeric precision.", choices=("auto", "bf16", "fp16", "fp32"))
    torch_compile: str = _opt(
        "auto", "Compile the model with torch.compile (auto: on for CUDA, off on CPU and MPS; see device.py).",
        choices=("auto", "on", "off"),
    )
    # --- monitoring and safety --------------------------------------------------------------
    logging_steps: int = _opt(5, "Log the training loss every N steps.")
    report_to: str = _opt("none", "Also log the metrics for a dashboard: TensorBoard event files or a local "
                          "Trackio project, under logs/ in the output folder.", choices=REPORT_TO)
    eval_steps: int = _opt(50, "Evaluate every N steps (0 = only at the end).")
    save_steps: int = _opt(100, "Write a resumable checkpoint every N steps (0 = never).")
    save_minutes: float = _opt(10.0, "Also write a checkpoint every N minutes of training (0 = only by steps); "
                                     "a stop always writes one.")
    save_total_limit: int = _opt(2, "Checkpoints kept; older ones are deleted.")
    resume: bool = _opt(False, "Continue from the latest checkpoint in output_dir.")
    early_stopping_patience: int = _opt(0, "Stop after N evals without eval-loss improvement (0 = off).")
    auto_reduce_batch_on_oom: bool = _opt(
        True, "On out-of-memory, retry with half the batch size and twice the gradient accumulation "
        "(same effective batch, steps and data order; only slower)."
    )
    probe_questions: list[str] = field(
        default_factory=list, metadata={"help": "Questions answered at every eval, to watch learning."}
    )
    eval_answer_samples: int = _opt(
        64, "Eval (and as many training) questions answered after training for exact match, F1 and "
        "ROUGE-L and the memorisation check (0 = off; generating answers is the slow part)."
    )

    answer_scoring_seconds: float = _opt(
        60.0, "Time budget for answering those questions after training; scoring stops starting new batches "
        "when it runs out and scores what was answered (0 = no limit)."
    )

    def validate(self) -> None:
        """Fail fast with one clear line, before any model is loaded."""
        _check_finite(self)
        _check_seed(self.seed)
        checks = [
            (0 <= self.eval_fraction < 1, f"eval_fraction must be in [0, 1) (got {self.eval_fraction})"),
            (self.max_length == 0 or self.max_length >= 8,
             f"max_length must be at least 8 tokens, or 0 for auto (got {self.max_length})"),
            (self.learning_rate > 0, f"learning_rate must be greater than 0 (got {self.learning_rate})"),
            (self.batch_size >= 1, f"batch_size must be at least 1 (got {self.batch_size})"),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be at least 1"),
            (self.epochs > 0 or self.max_steps > 0, "set epochs > 0 or max_steps > 0"),
            (self.max_steps >= 0, f"max_steps must be 0 or more (got {self.max_steps})"),
            (self.step_limit >= 0, f"step_limit must be 0 or more (got {self.step_limit})"),
            (self.max_minutes >= 0, f"max_minutes must be 0 or more (got {self.max_minutes})"),
            (self.epochs >= 0, f"epochs must be 0 or more (got {self.epochs})"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1) (got {self.dropout})"),
            (self.logging_steps >= 1, "logging_steps must be at least 1"),
            (self.save_total_limit >= 1, "save_total_limit must be at least 1"),
            (self.save_minutes >= 0, f"save_minutes must be 0 or more (got {self.save_minutes})"),
            (self.eval_answer_samples >= 0, f"eval_answer_samples must be 0 or more (got {self.eval_answer_samples})"),
            (self.early_stopping_patience >= 0, "early_stopping_patience must be 0 or more"),
            (self.eval_steps >= 0, f"eval_steps must be 0 or more (got {self.eval_steps})"),
            (self.save_steps >= 0, f"save_steps must be 0 or more (got {self.save_steps})"),
            (self.max_grad_norm > 0, f"max_grad_norm must be greater than 0 (got {self.max_grad_norm})"),
            (self.weight_decay >= 0, f"weight_decay must be 0 or more (got {self.weight_decay})"),
            (0 <= self.answer_scoring_seconds < float("inf"),
             f"answer_scoring_seconds must be 0 (no limit) or more (got {self.answer_scoring_seconds})"),
            (not self.early_stopping_patience or (self.eval_fraction > 0 and self.eval_steps > 0),
             "early stopping needs an eval split and periodic evals: set eval_fraction > 0 and eval_steps > 0"),
            *self._lora_checks(),
        ]
        checks.append((self.torch_compile in ("auto", "on", "off", True, False),  # bools: configs saved before "auto"
                       "torch_compile must be one of auto, on, off"))
        for name in ("device", "precision", "lr_scheduler", "overlong", "answer_lists", "method", "report_to"):
            choices = _field_metadata(TuneConfig, name)["choices"]
            checks.append((getattr(self, name) in choices, f"{name} must be one of {', '.join(choices)}"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def _lora_checks(self) -> list[tuple[bool, str]]:
        targets = [name for name in self.lora_target_modules if name and name.strip()]
        return [
            (self.lora_r >= 1, f"lora_r must be at least 1 (got {self.lora_r})"),
            (self.lora_alpha > 0, f"lora_alpha must be greater than 0 (got {self.lora_alpha})"),
            (0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1) (got {self.lora_dropout})"),
            (bool(targets), "lora_target_modules is empty: name at least one layer, e.g. c_attn"),
            (not self.merge_lora or self.method == "lora", "merge_lora needs method lora (full fine-tuning "
             "already saves full weights)"),
        ]

    # --- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict) -> "TuneConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k not in RECORD_KEYS}  # what a run resolved, not a setting
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "TuneConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit


def _check_finite(settings) -> None:
    """inf and nan pass every `>` and `<` test below the wrong way (or overflow later): refuse them first."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.type in ("float", float) and isinstance(value, (int, float)) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number (got {value})")


def _check_seed(seed) -> None:
    """None (generation: no seed) or a whole number numpy, torch and random all accept."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number (got {seed!r})")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more (got {seed})")
    if seed > MAX_SEED:
        raise ValueError(f"seed must be at most {MAX_SEED} (got {seed})")
# Beside the settings in a saved config: what the run resolved (gpt2tune.runs.resolved); "effective"
# is what older versions wrote there.
RECORD_KEYS = ("resolved", "effective")


def parse_auto_int(text: str) -> int:
    """A count where 'auto' (or 0) means: chosen from the data."""
    return 0 if str(text).strip().lower() == "auto" else int(text)


def _field_metadata(cls, name: str) -> dict:
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def field_help(cls, name: str) -> str:
    """The help text of a config field: used for CLI help and UI info lines."""
    return _field_metadata(cls, name).get("help", "")


def field_choices(cls, name: str) -> tuple | None:
    return _field_metadata(cls, name).get("choices")
