"""Checks tab: the base model, its vocabulary against the tokenizer, special tokens and hardware."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from gpt2tune.config import TuneConfig
from gpt2tune.ui.common import (
    default_base_model,
    listen,
    message_line,
    resolve_base_model,
    stat_tile,
    ui_errors,
    visitor_data,
)
from gpt2tune.ui.fields import build_config, field_component


@dataclass
class ChecksTab:
    base_model: gr.Textbox
    device: gr.Dropdown
    precision: gr.Dropdown
    allow_pickle: gr.Checkbox
    model_events: list  # events after which the base model named here has changed

    def config_inputs(self) -> dict:
        """The TuneConfig settings this tab holds, by field name."""
        return dict(base_model=self.base_model, device=self.device, precision=self.precision,
                    allow_pickle=self.allow_pickle)

    def model_inputs(self) -> dict:
        """The boxes that name the base model and how it may be loaded."""
        return dict(base_model=self.base_model, allow_pickle=self.allow_pickle)


def create_checks_tab(data_inputs: dict) -> ChecksTab:
    """data_inputs: the data settings (TuneConfig field name → component) set on the Data tab."""
    with gr.Tab("2 · Checks", id="checks") as page:
        gr.Markdown(
            "Pick the **pre-trained GPT-2** to start from and check it fits the data and this machine: "
            "vocabulary, special tokens, devices and precision.",
            elem_classes="tab-intro",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                base_model = field_component(
                    TuneConfig, "base_model", value=default_base_model(), elem_id="base-model",
                    info="Hub id (gpt2, distilgpt2, gpt2-medium, user/name) or a model folder in the working folder. "
                         "Offline, the tiny model stands in.")
                with gr.Row():
                    use_gpt2 = gr.Button(f"{TuneConfig.base_model} (Hub)", size="sm", min_width=100)
                    use_tiny = gr.Button("Offline tiny model", size="sm", min_width=100)
                device = field_component(TuneConfig, "device")
                precision = field_component(TuneConfig, "precision")
                allow_pickle = field_component(TuneConfig, "allow_pickle")
                run = gr.Button("Run checks", variant="primary")
                message = message_line("checks-message")
            with gr.Column(scale=5):
                verdict = gr.HTML('<div class="stat-grid placeholder">Run the checks to see the report.</div>',
                                  label="Verdict")
                report = gr.Markdown(elem_classes="summary", label="Report", show_label=False)

    with page:  # the endpoints' hidden buttons belong inside a tab
        chose_gpt2 = use_gpt2.click(lambda: TuneConfig.base_model, outputs=base_model, api_visibility="private",
                                    queue=False)
        chose_tiny = listen(use_tiny.click, _tiny_model, outputs=[base_model], message=message, api_name="tiny_model")
        # typed (not each keystroke: a half-typed id is no model), picked by a button, or the pickle box
        model_events = [base_model.submit, base_model.blur, chose_gpt2.success, chose_tiny.success, allow_pickle.input]
        tab = ChecksTab(base_model, device, precision, allow_pickle, model_events)
        listen(run.click, run_checks, inputs_kwargs={**data_inputs, **tab.config_inputs()}, outputs=[verdict, report],
               message=message, api_name="checks")
    return tab


def _tiny_model() -> str:
    from gpt2tune.model import tiny_model_dir

    return str(tiny_model_dir())


@ui_errors
def run_checks(**values):
    from gpt2tune.training.checks import run_checks as check

    values = visitor_data(values)
    values["base_model"], fallback_warning = resolve_base_model(values.get("base_model"))
    config = build_config(TuneConfig, values)
    result = check(config)
    warnings = [w for w in [fallback_warning, *result.warnings] if w]
    return _verdict_html(result), "\n\n".join([*(f"> ⚠️ {w}" for w in warnings), _report_markdown(result)])


def _verdict_html(result) -> str:
    vocab, devices = result.vocab, result.devices
    resized = vocab.embedding_rows != vocab.embedding_rows_before
    tiles = [
        stat_tile("Model", f"{result.parameters / 1e6:.1f}M", _short(result.base_model)),
        stat_tile("Vocabulary", "fixed" if resized else "ok", vocab.action, "warn" if resized else "good"),
        stat_tile("Device", devices.device.upper(), devices.cuda_devices[0]["name"] if devices.cuda_devices else
              ("Apple GPU" if devices.device == "mps" else f"{devices.cpu_count} CPU cores")),
        stat_tile("Precision", devices.precision, devices.reason),
        stat_tile("Train examples", f"{result.prep.train_examples:,}", f"in {result.prep.train_rows:,} packed rows"),
        *([_memory_tile(result.memory)] if result.memory is not None else []),
    ]
    return f'<div class="stat-grid">{"".join(tiles)}</div>'


def _report_markdown(result) -> str:
    vocab, devices = result.vocab, result.devices
    gpus = [
        f"| CUDA:{i} | {gpu['name']} | {gpu['memory_gb']:.1f} GB | {'yes' if gpu['bf16'] else 'no'} |"
        for i, gpu in enumerate(devices.cuda_devices)
    ]
    rows = [
        "### Model and vocabulary",
        f"`{result.base_model}` · {result.parameters:,} parameters",
        "",
        "| check | value |", "|---|---|",
        f"| tokenizer size | {vocab.tokenizer_size:,} tokens |",
        f"| model embedding rows | {vocab.embedding_rows_before:,}"
        + (f" → {vocab.embedding_rows:,}" if vocab.embedding_rows != vocab.embedding_rows_before else "") + " |",
        f"| result | {vocab.action} |",
        "",
        "### Special tokens",
        "| token | id |", "|---|---|",
        f"| end of text (EOS) | {vocab.eos_token_id} |",
        f"| beginning (BOS) | {vocab.bos_token_id} |",
        f"| padding | {vocab.pad_token_id}" + (" (reuses EOS; padding is masked, EOS stays a learned label)"
                                             if vocab.pad_is_eos else "") + " |",
        "",
        "### Devices",
        "| device | name | memory | bf16 |", "|---|---|---|---|",
        *(gpus or ["| CUDA | not available | | |"]),
        f"| MPS | {'available' if devices.mps_available else 'not available'} | | |",
        f"| CPU | {devices.cpu_count} cores, torch uses {devices.cpu_threads} threads | | |",
        "",
        f"**Chosen:** {devices.device} with **{devices.precision}** — {devices.reason}",
        "",
        "### Data as trained on",
        *[f"- {line}" for line in result.data.summary().splitlines() + result.prep.summary().splitlines()],
        *(_memory_markdown(result.memory) if result.memory is not None else []),
    ]
    return "\n".join(rows)


def _memory_tile(memory) -> str:
    full, lora = memory.methods
    return stat_tile("Training memory", f"{full.total / 2**30:.1f} / {lora.total / 2**30:.1f} GB",
                     f"full / LoRA at batch size {memory.batch_size}",
                     "warn" if full.fits is False else "good")


def _memory_markdown(memory) -> list[str]:
    """Both methods side by side: what each keeps in memory for one training step."""
    gb = lambda n: f"{n / 2**30:.2f} GB"  # noqa: E731
    have = f"{memory.available / 2**30:.1f} GB" if memory.available else "unknown memory"
    return [
        "",
        f"### Training memory (estimate: batch size {memory.batch_size} × {memory.max_length} tokens, "
        f"{memory.device} with {have})",
        "| method | trains | weights | gradients + optimizer | activations | total | fits |",
        "|---|---|---|---|---|---|---|",
        *[f"| {m.method} | {m.trainable:,} | {gb(m.weights)} | {gb(m.gradients_and_optimizer)} | "
          f"{gb(m.activations)} | **{gb(m.total)}** | {({True: 'yes', False: 'no', None: '?'})[m.fits]} |"
          for m in memory.methods],
    ]


def _short(text: str, limit: int = 42) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
