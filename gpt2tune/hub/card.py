"""The model card (README.md) written into every output folder and pushed with the model.

It is built only from files in the folder (config, metrics, loss history, sample answers), none of
which holds a secret, so writing it again later (e.g. with the Hub repo id at push time) gives the
same card. The loss plot is a PNG beside it, which the Hub renders from the relative link.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from gpt2tune.config import TuneConfig
from gpt2tune.data.prompt import template_description
from gpt2tune.runs import artifacts
from gpt2tune.runs.resolved import load_run

CARD_FILE = "README.md"
SAMPLES_FILE = "samples.json"
LOSS_PLOT_FILE = "loss.png"
CARD_MARKER = "<!-- written by gpt2tune: rewritten on push -->"
SAMPLES_SHOWN = 5


def build_model_card(output_dir: str | Path, repo_id: str | None = None, title: str | None = None,
                     license: str = "mit"):
    """A `huggingface_hub.ModelCard` from the run's files in `output_dir`."""
    from huggingface_hub import ModelCard

    output_dir = Path(output_dir)
    config, resolved, metrics, adapter = _run_files(output_dir)
    samples = artifacts.read_json(output_dir / SAMPLES_FILE, []) or []
    base_model = _base_model(adapter, resolved, metrics, config)
    name = repo_id or title or output_dir.name
    metadata = _metadata(base_model, metrics, config, name, license)
    if adapter is not None:  # the Hub lists an adapter under its base model, loaded with peft
        metadata.library_name = "peft"
        metadata.tags = [*metadata.tags, "peft", "lora"]
    sections = [
        "---",
        metadata.to_yaml(),
        "---",
        CARD_MARKER,
        "",
        f"# {name}",
        "",
        f"GPT-2 fine-tuned with gpt2tune on question/answer pairs, starting from {_describe(base_model)}.",
        "",
        _method(config, adapter is not None, base_model),
        _results(metrics),
    ]
    if (output_dir / LOSS_PLOT_FILE).exists():
        sections += ["## Loss curve", "", f"![training and eval loss]({LOSS_PLOT_FILE})", ""]
    if samples:
        sections += ["## Sample answers (eval questions, greedy decoding)", "", _samples(samples[:SAMPLES_SHOWN]), ""]
    sections += [
        "## Prompt template",
        "",
        "```",
        template_description(),
        "```",
        "",
        "## Data",
        "",
        _data(metrics, config, resolved),
        "",
        "## Hyper-parameters",
        "",
        _table(_hyperparameters(config, resolved)),
        "",
        "## All metrics",
        "",
        _table({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}),
        "",
        "## Use",
        "",
        "```python",
        *_loading_code(repo_id or "path/to/this/folder", adapter is not None),
        'prompt = "Question: What is the capital of France?\\nAnswer:"',
        "output = model.generate(**tokenizer(prompt, return_tensors=\"pt\"), max_new_tokens=64)",
        "```",
        "",
    ]
    return ModelCard("\n".join(sections))


def _run_files(output_dir: Path) -> tuple[dict, object, dict, dict | None]:
    """(the settings as asked, what the run resolved or None, metrics, the adapter's config or None)."""
    run = load_run(output_dir)
    return (run.settings.to_dict() if run else {}, run.resolved if run else None,
            artifacts.read_json(output_dir / artifacts.METRICS_FILE, {}) or {},
            artifacts.read_json(output_dir / artifacts.ADAPTER_CONFIG_FILE))


def _base_model(adapter: dict | None, resolved, metrics: dict, config: dict) -> str:
    """The model the run started from: the adapter's base, else the one the run loaded."""
    return str((adapter or {}).get("base_model_name_or_path") or (resolved.base_model if resolved else None)
               or metrics.get("base_model") or config.get("base_model") or TuneConfig.base_model)


def card_summary(output_dir: str | Path) -> str:
    """The card's opening, in its words: what the model is, what it was trained on, how it scored
    (Markdown; a demo page shows it beside the model)."""
    config, resolved, metrics, adapter = _run_files(Path(output_dir))
    base_model = _base_model(adapter, resolved, metrics, config)
    return "\n".join([
        f"GPT-2 fine-tuned with gpt2tune on question/answer pairs, starting from {_describe(base_model)}.", "",
        _method(config, adapter is not None, base_model), "## Data", "", _data(metrics, config, resolved), "",
        _results(metrics)])


def write_model_card(output_dir: str | Path, repo_id: str | None = None, title: str | None = None) -> Path:
    path = Path(output_dir) / CARD_FILE
    build_model_card(output_dir, repo_id, title).save(path)
    return path


def is_generated_card(path: str | Path) -> bool:
    """True for a card gpt2tune wrote (safe to rewrite), False for a hand-written or missing one."""
    try:
        return CARD_MARKER in Path(path).read_text(encoding="utf-8")
    except OSError:
        return False


def write_loss_plot(history: list[dict], output_dir: str | Path) -> Path | None:
    """loss.png: training and eval loss per step, the best eval marked. None when nothing was logged."""
    train = [(e["step"], e["loss"]) for e in history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        if train:
            axes.plot(*zip(*train), label="training loss", color="tab:blue")
        if evals:
            axes.plot(*zip(*evals), "o-", label="eval loss", color="tab:orange")
        best = [(e["step"], e["eval_loss"]) for e in history if e.get("best")]
        if best:
            axes.plot(*best[0], "*", markersize=16, color="tab:red", label=f"best eval (step {best[0][0]})")
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = Path(output_dir) / LOSS_PLOT_FILE
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path


def _describe(base_model: str) -> str:
    # Only the folder's name: a public card should not reveal the trainer's file system.
    return f"`{base_model}`" if _is_hub_id(base_model) else f"a local model folder (`{Path(base_model).name}`)"


def _is_hub_id(name: str) -> bool:
    # A local folder (even one that no longer exists here) is not something the Hub can link to.
    from gpt2tune.references import is_repo_id

    return is_repo_id(name) and not Path(name).exists()


def _metadata(base_model: str, metrics: dict, config: dict, name: str, license: str):
    from huggingface_hub import EvalResult, ModelCardData

    dataset_name = (metrics.get("dataset") or {}).get("file") or Path(str(config.get("csv", "data"))).name
    scores = [("perplexity", "perplexity", "Eval perplexity"), ("answer_f1", "f1", "Answer token F1"),
              ("answer_exact_match", "exact_match", "Answer exact match"), ("answer_rouge_l", "rouge", "Answer ROUGE-L")]
    results = [
        EvalResult(task_type="text-generation", task_name="Question answering", dataset_type="csv",
                   dataset_name=dataset_name, dataset_split="eval", metric_type=metric, metric_name=label,
                   metric_value=round(float(metrics[key]), 4))
        for key, metric, label in scores
        if isinstance(metrics.get(key), (int, float)) and metrics[key] != float("inf")
    ]
    return ModelCardData(
        base_model=base_model if _is_hub_id(base_model) else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        license=license,
        tags=["gpt2", "gpt2tune", "question-answering", "fine-tuned"],
        model_name=name if results else None,
        datasets=[(metrics.get("dataset") or {})["hub_dataset"]] if (metrics.get("dataset") or {}).get("hub_dataset")
        else None,
        eval_results=results or None,
    )


def _method(config: dict, is_adapter: bool, base_model: str) -> str:
    """Which weights these are: a full fine-tune, LoRA adapters, or adapters merged into full weights."""
    if config.get("method") != "lora":
        return "All weights were fine-tuned; this repo holds the full model.\n"
    lora = (f"rank {config.get('lora_r')}, alpha {config.get('lora_alpha')}, dropout {config.get('lora_dropout')}, "
            f"on {', '.join(config.get('lora_target_modules') or [])}")
    if is_adapter:
        return (f"**LoRA adapters** ({lora}) trained with [peft](https://github.com/huggingface/peft) beside the "
                f"frozen weights of {_describe(base_model)}: this repo holds only the adapters; the base model is "
                "loaded first, then the adapters on top.\n")
    return (f"**Full weights with LoRA adapters merged in** ({lora}): loads like any GPT-2, without peft.\n")


def _loading_code(reference: str, is_adapter: bool) -> list[str]:
    if is_adapter:
        return ["from peft import AutoPeftModelForCausalLM",
                "from transformers import AutoTokenizer",
                f'model = AutoPeftModelForCausalLM.from_pretrained("{reference}")  # base model, then the adapters',
                f'tokenizer = AutoTokenizer.from_pretrained("{reference}")']
    return ["from transformers import AutoModelForCausalLM, AutoTokenizer",
            f'model = AutoModelForCausalLM.from_pretrained("{reference}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{reference}")']


def _results(metrics: dict) -> str:
    lines = ["## Results", ""]
    memorisation = metrics.get("memorisation")
    if memorisation:
        lines += [f"**Verdict: {memorisation['verdict']}.** {memorisation['text']}", ""]
    shown = [("eval loss", "eval_loss"), ("perplexity", "perplexity"), ("answer exact match", "answer_exact_match"),
             ("answer F1", "answer_f1"), ("answer ROUGE-L", "answer_rouge_l"), ("training answer F1", "train_answer_f1"),
             ("answers scored", "answer_samples"), ("best step", "best_step"), ("steps", "global_step")]
    lines.append(_table({label: metrics[key] for label, key in shown if metrics.get(key) is not None}))
    if metrics.get("stopped_early_reason"):
        lines += ["", f"Early stopping: {metrics['stopped_early_reason']}."]
    return "\n".join(lines) + "\n"


def _samples(samples: list[dict]) -> str:
    # beside each answer, the most similar training question and its answer: recited, or generalised?
    # (a run saved before the nearest-example index has none)
    nearest = any("nearest" in s for s in samples)
    rows = ["| question | reference | generated |" + (" nearest training example (similarity) |" if nearest else ""),
            "|---" * (4 if nearest else 3) + "|"]
    rows += [f"| {_cell(s['question'])} | {_cell(s['reference'])} | {_cell(s['generated'])} |"
             + (f" {_nearest(s)} |" if nearest else "") for s in samples]
    return "\n".join(rows)


def _nearest(sample: dict) -> str:
    near = sample.get("nearest")
    if not near:
        return "(none)"
    return f"({near['score']:.2f}) Q: {_cell(near['question'], 100)} A: {_cell(near['answer'], 100)}"


def _data(metrics: dict, config: dict, resolved) -> str:
    dataset = metrics.get("dataset") or {}
    lines = [
        f"- Hub dataset: [{dataset['hub_dataset']}](https://huggingface.co/datasets/{dataset['hub_dataset']}), "
        f"split `{dataset.get('split')}`" if dataset.get("hub_dataset") else
        f"- file: {_code(dataset.get('file') or Path(str(config.get('csv', '?'))).name, 200)}",
        f"- rows after cleaning: {dataset.get('rows', '?')}",
        f"- SHA-256 of the {'rows' if dataset.get('hub_dataset') else 'file'}: `{dataset.get('sha256', '?')}`",
        f"- training examples: {metrics.get('train_examples', '?')}, eval examples: {metrics.get('eval_examples', '?')}"
        f" (eval fraction {config.get('eval_fraction', '?')}, split seed {config.get('seed', '?')})",
    ]
    record = metrics.get("data") or {}
    if resolved is not None:
        lines.append(f"- columns used: question ← {_code(resolved.question_column)}, "
                     f"answer ← {_code(resolved.answer_column)}")
        # the length used and its coverage in the words `check` and `train` print (one wording, one rounding)
        lines += [f"- {line}" for line in resolved.length.summary().splitlines()]
        if resolved.truncated_train or resolved.truncated_eval:
            lines.append(f"- truncated: {resolved.truncated_train} training and {resolved.truncated_eval} eval "
                         "examples (no end-of-text token at the cut)")
    duplicates = record.get("duplicates")
    if duplicates:
        lines.append(f"- duplicates: {duplicates['exact_duplicate_rows']} rows repeat an earlier row exactly "
                     f"({duplicates['normalised_duplicate_rows']} ignoring case, spacing and punctuation); "
                     f"{duplicates['conflicting_questions']} distinct questions have different answers")
    leak = record.get("leakage")
    if leak and leak.get("eval_rows"):
        lines.append(f"- leakage: {leak['leaked_rows']} of {leak['eval_rows']} eval rows ({leak['leaked_questions']} "
                     "distinct questions) also appear in the training split"
                     + ("; eval scores on them measure recall, not generalisation" if leak["leaked_rows"] else ""))
    if record.get("list_answers"):
        lines.append(f"- {record['list_answers']} questions have several acceptable answers; scores take the best")
    return "\n".join(lines)


def _hyperparameters(config: dict, resolved) -> dict:
    """The settings, with what the run actually used where a setting said auto or was derived."""
    keys = _HYPERPARAMETERS + (_LORA_HYPERPARAMETERS if config.get("method") == "lora" else ())
    values = {k: config[k] for k in keys if k in config}
    if resolved is None:
        return values
    if "max_length" in values:
        values["max_length"] = resolved.max_length if values["max_length"] else f"{resolved.max_length} (auto)"
    if resolved.max_steps:
        values["max_steps"] = resolved.max_steps
        if resolved.epochs is not None:
            values["epochs"] = round(float(resolved.epochs), 3)  # what max_steps amounted to, not the setting
    values["batch_size"] = resolved.batch_size
    values["gradient_accumulation_steps"] = resolved.gradient_accumulation_steps
    return values


# what Markdown reads as markup in a table cell; "_" only where it can open or close emphasis (not HF_TOKEN)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<!\w)_|_(?!\w))")


def _flat(text, limit: int) -> str:
    """On one line (runs of whitespace as one space), cut as every quoted value is (`tables.short`)."""
    from gpt2tune.data.tables import short

    return short(" ".join(str(text).split()), limit)


def _cell(text, limit: int = 200) -> str:
    """Data quoted in a table cell, shown as the text it is: HTML and Markdown in it are escaped, never
    rendered (a cell holding `<img onerror=…>` or `**` reads as those characters)."""
    text = html.escape(_flat(text, limit), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text) or "(empty)"


def _code(text, limit: int = 60) -> str:
    """Data (a column name) as a code span: fenced by one backtick more than its longest run of them,
    so a backtick in it cannot end the span (CommonMark)."""
    text = _flat(text, limit)
    run = max((len(ticks) for ticks in re.findall(r"`+", text)), default=0)
    pad = " " if run else ""
    return f"{'`' * (run + 1)}{pad}{text}{pad}{'`' * (run + 1)}"


_HYPERPARAMETERS = (
    "learning_rate", "batch_size", "gradient_accumulation_steps", "epochs", "max_steps", "max_length",
    "warmup_ratio", "weight_decay", "lr_scheduler", "dropout", "seed", "eval_fraction",
    "train_on_answers_only", "pack", "early_stopping_patience",
)


_LORA_HYPERPARAMETERS = ("method", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")


def _table(values: dict) -> str:
    if not values:
        return "(none recorded)"
    rows = ["| name | value |", "|---|---|"]
    rows += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in values.items()]
    return "\n".join(rows)
