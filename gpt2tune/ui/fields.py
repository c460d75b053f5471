"""Components built from the config dataclasses' fields, and configs built back from their values.

The label, info line and default of every setting come from `gpt2tune.config`, so a new TuneConfig
field needs no UI code beyond naming the box it goes in.
"""

from __future__ import annotations

import dataclasses
import typing

import gradio as gr

from gpt2tune.config import field_choices, field_help

LABELS = {  # where the field name alone reads badly
    "lr_scheduler": "Learning-rate schedule",
    "max_steps": "Max steps (0 = use epochs)",
    "eval_steps": "Eval every N steps",
    "save_steps": "Checkpoint every N steps",
    "logging_steps": "Log every N steps",
    "train_on_answers_only": "Train on answers only",
    "pack": "Pack examples",
    "torch_compile": "torch.compile",
    "do_sample": "Sample",
    "top_p": "Top-p",
    "top_k": "Top-k",
    "probe_questions": "Probe questions (one per line)",
    "early_stopping_patience": "Early-stopping patience (evals)",
    "method": "Method",
    "lora_r": "LoRA rank (r)",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "lora_target_modules": "LoRA target modules (one per line)",
    "merge_lora": "Also save merged full weights",
    "report_to": "Log to a dashboard",
}


def _field(cls, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _base_type(cls, name: str):
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list:
        return list
    return args[0] if args and typing.get_origin(hint) is not list else hint


def default_value(cls, name: str):
    f = _field(cls, name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def field_component(cls, name: str, component=None, **kwargs) -> gr.Component:
    """The natural input for one field (override the class or any argument per call)."""
    kind = _base_type(cls, name)
    value = kwargs.pop("value", default_value(cls, name))
    kwargs = {"label": label(name), "info": field_help(cls, name), **kwargs}
    if component is not None:
        return component(value=value, **kwargs)
    choices = field_choices(cls, name)
    if choices:
        return gr.Dropdown(choices=list(choices), value=value, **kwargs)
    if kind is bool:
        return gr.Checkbox(value=value, **kwargs)
    if kind is int:
        return gr.Number(value=value, precision=0, **kwargs)
    if kind is float:
        return gr.Number(value=value, **kwargs)
    if kind is list:
        return gr.Textbox(value="\n".join(value), lines=3, **kwargs)
    return gr.Textbox(value=value, **kwargs)


def form_value(cls, name: str, value):
    """A saved setting as its box (`field_component`) takes it, so that `build_config` reads back the
    same value: a list is one line per item, a choice saved as a bool by older versions is on/off."""
    kind = _base_type(cls, name)
    if kind is list:
        return "\n".join(str(item) for item in (value or []))
    if field_choices(cls, name) and isinstance(value, bool):
        return "on" if value else "off"
    return value


def build_config(cls, values: dict):
    """`cls(**values)` after turning UI values into the field types (Number gives floats, a
    Textbox gives one string for a list); an empty required box is a ValueError naming it."""
    converted = {}
    for name, value in values.items():
        kind = _base_type(cls, name)
        if kind is list:
            lines = value if isinstance(value, list) else (value or "").splitlines()  # an API client may send a list
            converted[name] = [str(line).strip() for line in lines if str(line).strip()]
            continue
        if isinstance(value, str) and kind is not str:
            value = value.strip() or None
        if value is None or value == "":
            if default_value(cls, name) is not None:
                raise ValueError(f"{label(name)} is empty: enter a value")
            converted[name] = None
        elif kind is int:
            if float(value) != int(float(value)):
                raise ValueError(f"{label(name)} must be a whole number (got {value})")
            converted[name] = int(float(value))
        elif kind is float:
            converted[name] = float(value)
        elif kind is bool:
            converted[name] = bool(value)
        else:
            converted[name] = value
    return cls(**converted)
