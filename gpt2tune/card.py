"""The model card (README.md) written into every output folder and pushed with the model."""

from __future__ import annotations

from pathlib import Path

from gpt2tune import artifacts
from gpt2tune.prompt import template_description

CARD_FILE = "README.md"


def build_model_card(output_dir: str | Path, repo_id: str | None = None):
    """A `huggingface_hub.ModelCard` from the run's config and metrics (no secrets live there)."""
    from huggingface_hub import ModelCard, ModelCardData

    output_dir = Path(output_dir)
    config = artifacts.read_json(output_dir / artifacts.CONFIG_FILE, {}) or {}
    metrics = artifacts.read_json(output_dir / artifacts.METRICS_FILE, {}) or {}
    base_model = metrics.get("base_model") or config.get("base_model") or "gpt2"
    data = ModelCardData(
        base_model=base_model if not Path(base_model).exists() else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        license="mit",
        tags=["gpt2", "gpt2tune", "question-answering", "fine-tuned"],
    )
    title = repo_id or output_dir.name
    hyper = {k: config[k] for k in _HYPERPARAMETERS if k in config}
    body = "\n".join(
        [
            "---",
            data.to_yaml(),
            "---",
            f"# {title}",
            "",
            f"GPT-2 fine-tuned with gpt2tune on question/answer pairs, from `{base_model}`.",
            "",
            "## Prompt template",
            "",
            "```",
            template_description(),
            "```",
            "",
            "## Data",
            "",
            f"- source file: `{Path(str(config.get('csv', '?'))).name}`",
            f"- training examples: {metrics.get('train_examples', '?')}, eval examples: {metrics.get('eval_examples', '?')}",
            "",
            "## Hyper-parameters",
            "",
            _table(hyper),
            "",
            "## Metrics",
            "",
            _table({k: v for k, v in metrics.items() if isinstance(v, (int, float))}),
            "",
            "## Use",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id or output_dir}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id or output_dir}")',
            "```",
            "",
        ]
    )
    return ModelCard(body)


def write_model_card(output_dir: str | Path, repo_id: str | None = None) -> Path:
    path = Path(output_dir) / CARD_FILE
    build_model_card(output_dir, repo_id).save(path)
    return path


_HYPERPARAMETERS = (
    "learning_rate", "batch_size", "gradient_accumulation_steps", "epochs", "max_steps", "max_length",
    "warmup_ratio", "weight_decay", "lr_scheduler", "dropout", "seed", "eval_fraction",
    "train_on_answers_only", "pack",
)


def _table(values: dict) -> str:
    if not values:
        return "(none recorded)"
    rows = ["| name | value |", "|---|---|"]
    rows += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in values.items()]
    return "\n".join(rows)
