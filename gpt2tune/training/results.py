"""What a finished run leaves behind: its metrics, loss history, answer scores and output folder.

`gpt2tune.training.train` calls these once the Trainer is done; they only read the Trainer's state.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from gpt2tune.runs import artifacts
from gpt2tune.config import TuneConfig
from gpt2tune.evaluation.metrics import perplexity


def collect_metrics(trainer, train_output, eval_set, prep, base_model, devices) -> dict:
    metrics = {
        "base_model": base_model,
        "device": devices.device,
        "precision": devices.precision,
        "precision_reason": devices.reason,
        "bf16_speedup": devices.bf16_speedup,  # the CPU's measured (or cached) ratio that chose it; None elsewhere
        "torch_compile": devices.compile,
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        "train_runtime": train_output.metrics.get("train_runtime"),
        "train_loss": train_output.training_loss,
        "train_real_tokens": int(trainer.state.num_input_tokens_seen),
        "train_examples": prep.train_examples,
        "eval_examples": prep.eval_examples,
        "truncated_examples": prep.truncated,
    }
    if metrics["train_runtime"]:
        metrics["train_real_tokens_per_s"] = metrics["train_real_tokens"] / metrics["train_runtime"]
    if eval_set is not None:
        eval_loss = _last_eval_loss_at(trainer, trainer.state.global_step) or trainer.evaluate()["eval_loss"]
        metrics["eval_loss"] = eval_loss
        metrics["perplexity"] = perplexity(eval_loss)
    if trainer.state.best_global_step:
        metrics["best_step"] = trainer.state.best_global_step
    return metrics


def _last_eval_loss_at(trainer, step: int) -> float | None:
    """Reuse the eval the Trainer just ran at this very step instead of running it again."""
    if trainer.args.load_best_model_at_end:
        # The weights now are the best step's: their eval loss is the best one, no need to eval again.
        return trainer.state.best_metric if trainer.state.best_model_checkpoint else None
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry:
            return entry["eval_loss"] if entry.get("step") == step else None
    return None


def loss_history(trainer) -> list[dict]:
    history = artifacts.loss_points(trainer.state.log_history)
    best_step = _best_eval(history)[0]
    for entry in history:
        if "eval_loss" in entry and entry["step"] == best_step:
            entry["best"] = True  # the eval with the lowest loss: the step early stopping restores
    return history


def _best_eval(history: list[dict]) -> tuple[int | None, float | None]:
    """(step, eval loss) of the lowest eval loss; the first one on ties, as the Trainer picks it."""
    evals = [entry for entry in history if "eval_loss" in entry]
    if not evals:
        return None, None
    best = min(evals, key=lambda entry: entry["eval_loss"])
    return best["step"], best["eval_loss"]


def early_stopping_record(trainer) -> dict:
    """best_step / best_eval_loss always (when there were evals); why training stopped early, if it did."""
    from transformers import EarlyStoppingCallback

    best_step, best_loss = _best_eval(trainer.state.log_history)
    if best_step is None:
        return {}
    record = {"best_step": trainer.state.best_global_step or best_step, "best_eval_loss": best_loss,
              "stopped_early_reason": None}
    stopper = next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, EarlyStoppingCallback)), None)
    if stopper and stopper.early_stopping_patience_counter >= stopper.early_stopping_patience:
        record["stopped_early_reason"] = (
            f"eval loss did not improve for {stopper.early_stopping_patience_counter} evals after step "
            f"{record['best_step']}; stopped at step {trainer.state.global_step} of {trainer.state.max_steps} "
            f"and restored step {record['best_step']}"
        )
    return record


def dataset_fingerprint(csv, rows: int) -> dict:
    """Which data this model saw: the file's name, its rows after cleaning and its SHA-256."""
    from gpt2tune.data.tables import file_sha256

    return {"file": Path(csv).name, "rows": rows, "sha256": file_sha256(csv)}


def source_fingerprint(config: TuneConfig, data) -> dict:
    """The fingerprint of the data a TuneConfig names: its Hub dataset, or its file."""
    if config.dataset:
        from gpt2tune.data.hub_dataset import fingerprint

        return fingerprint(data.frame, data.report.source, config.dataset, config.dataset_config,
                           config.dataset_revision)
    return dataset_fingerprint(config.csv, len(data.frame))


def record_answer_scores(config: TuneConfig, model, tokenizer, train_frame, eval_frame, metrics: dict, status) -> list[dict]:
    """Answer metrics and the memorisation verdict into `metrics`; returns a few eval Q&As."""
    from gpt2tune.evaluation.evaluate import answer_evaluation

    if not config.eval_answer_samples or len(eval_frame) == 0:
        return []
    n = min(config.eval_answer_samples, len(eval_frame))
    budget = config.answer_scoring_seconds
    status(f"answering {n} eval and {min(n, len(train_frame))} training questions (exact match, F1, ROUGE-L)"
           + (f" within {budget:g} s (answer_scoring_seconds)..." if budget else "..."))
    result = answer_evaluation(model, tokenizer, train_frame, eval_frame, n, config.seed, time_budget_s=budget)
    metrics.update(result.metrics())
    answered = result.eval_scores["count"]
    if answered < n:
        status(f"answer scoring stopped at its time budget ({budget:g} s): {answered} of {n} eval questions answered "
               "and scored; raise answer_scoring_seconds (0 = no limit) to answer all")
    status(f"answers: exact match {result.eval_scores['exact_match']:.3f}, F1 {result.eval_scores['f1']:.3f}, "
           f"ROUGE-L {result.eval_scores['rouge_l']:.3f} ({answered} questions, {result.seconds:.0f} s)\n"
           f"{result.verdict['verdict']}: {result.verdict['text']}")
    return result.samples


def training_precision(devices):
    """Answers are scored in the precision the run trained in: under bf16 autocast where it trained
    so (on a CPU, only where bf16 products were measured faster), which decodes about twice as fast
    there as fp32 (bench/RESULTS.md); fp32 otherwise."""
    import contextlib

    import torch

    if devices.precision == "bf16" and devices.device in ("cpu", "cuda"):
        return torch.autocast(devices.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def nearest_index(train_frame, samples: list[dict], metrics: dict, status):
    """(the index of the training split's questions that every answer view looks its nearest example up
    in, or None when the split is too large for one; the sample answers with their nearest example)."""
    from gpt2tune.evaluation.nearest_example import LABEL, MAX_ROWS, build_index, with_nearest

    started = time.perf_counter()
    index = build_index(train_frame, {"file": (metrics.get("dataset") or {}).get("file")})
    if index is None:
        status(f"{LABEL} index not built: {len(train_frame):,} training rows (at most {MAX_ROWS:,})")
    else:
        status(f"{LABEL} index: {len(index):,} training questions ({time.perf_counter() - started:.1f} s)")
    return index, with_nearest(samples, index)


def remove_staging(output_dir: Path) -> None:
    shutil.rmtree(Path(output_dir) / ".staging", ignore_errors=True)


def data_record(data_report, dataset) -> dict:
    """What training made of the data, for metrics.json and the model card: the columns used, the
    length policy, duplicates and leakage (one definition: data.normalise) and content checks."""
    leak = dataset.leakage
    return {
        "data": {
            "columns": {"question": data_report.question_column, "answer": data_report.answer_column},
            "length_policy": dataset.length.to_dict(),
            "duplicates": dataset.duplicates.to_dict(),
            "leakage": leak.to_dict() if leak is not None else None,
            "languages": dataset.languages,
            "non_english_share": dataset.non_english_share,
            "invisible_chars_removed": data_report.invisible_chars,
            "html_cells": data_report.html_cells,
            "html_stripped": data_report.html_stripped,
            "list_answers": data_report.list_answers,
        },
        # top-level numbers, so the CLI prints them with the other metrics
        "max_length": dataset.length.max_length,
        "examples_fitting_max_length": dataset.length.fitting,
        "leaked_eval_rows": leak.leaked_rows if leak is not None else 0,
        "leaked_eval_questions": leak.leaked_questions if leak is not None else 0,
    }


def final_resolved(trainer, config, resolved):
    """The run's Resolved with what the Trainer made of it: steps and epochs planned and run, and the
    batch an out-of-memory retry may have halved (`config` is the one the Trainer ran with)."""
    import dataclasses

    state = trainer.state
    # with max_steps set, the epochs follow from it (and from the rows per epoch), not from `epochs`
    epochs = state.epoch * state.max_steps / state.global_step if state.global_step and state.epoch else None
    return dataclasses.replace(resolved, max_steps=state.max_steps, epochs=epochs, steps_run=state.global_step,
                               batch_size=config.batch_size,
                               gradient_accumulation_steps=config.gradient_accumulation_steps)


class RunClock:
    """Where a run's wall time went: preparation, training, evaluation, answer scoring.

    `mark(phase)` books the time since the previous mark to `phase`. The Trainer's periodic evals run
    inside its training loop; their own runtimes (the `eval_runtime` it logs) move from training to
    evaluation, so the training figure is the time spent training."""

    def __init__(self):
        self._last = time.perf_counter()
        self._started = self._last
        self.seconds: dict[str, float] = {}

    def mark(self, phase: str, log_history: list[dict] | None = None) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now
        if log_history:
            periodic = sum(entry.get("eval_runtime", 0.0) for entry in log_history)
            self.seconds[phase] -= periodic
            self.seconds["evaluation"] = self.seconds.get("evaluation", 0.0) + periodic

    def split(self) -> dict:
        """`time_s` in metrics.json: seconds per phase, and the total since the clock started."""
        phases = ("preparation", "training", "evaluation", "answer_scoring")
        split = {phase: round(self.seconds.get(phase, 0.0), 3) for phase in phases}
        split["total"] = round(self._last - self._started, 3)
        return split


def save_outputs(trainer, tokenizer, config, resolved, metrics, history, output_dir: Path, samples=(),
                 nearest=None) -> None:
    """`config`: the settings as asked; `resolved`: what the run made of them (both go in gpt2tune_config.json)."""
    from gpt2tune.hub.card import SAMPLES_FILE, write_loss_plot, write_model_card
    from gpt2tune.runs.resolved import write_config

    staging = output_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of a crashed save must not be published
    trainer.save_model(str(staging))  # saves model (safetensors) and tokenizer; a LoRA run's adapters only
    tokenizer.save_pretrained(str(staging))
    write_config(staging / artifacts.CONFIG_FILE, config, resolved)
    artifacts.write_json(staging / artifacts.METRICS_FILE, metrics)
    artifacts.write_json(staging / artifacts.HISTORY_FILE, history)
    artifacts.write_json(staging / SAMPLES_FILE, list(samples))
    write_loss_plot(history, staging)
    from gpt2tune.data.nearest import INDEX_FILE

    if nearest is not None:  # a data.nearest.NearestIndex over the training split
        nearest.save(staging / INDEX_FILE)
    else:  # none for this run: an earlier run's in the folder would answer for the wrong data
        (output_dir / INDEX_FILE).unlink(missing_ok=True)
    write_model_card(staging, title=output_dir.name)
    (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; our JSON config replaces it
    if config.method == "lora" and config.merge_lora:
        save_merged(trainer.model, tokenizer, staging, title=output_dir.name)
    artifacts.publish_folder(staging, output_dir)


def save_merged(model, tokenizer, staging: Path, title: str) -> None:
    """merged/: full weights with the adapters merged in, with the run's record and its own card."""
    from gpt2tune.hub.card import LOSS_PLOT_FILE, SAMPLES_FILE, write_model_card
    from gpt2tune.training.adapters import save_merged as merge

    folder = staging / artifacts.MERGED_DIR
    merge(model, tokenizer, folder)
    from gpt2tune.data.nearest import INDEX_FILE

    for name in (artifacts.CONFIG_FILE, artifacts.METRICS_FILE, artifacts.HISTORY_FILE, SAMPLES_FILE, LOSS_PLOT_FILE,
                 INDEX_FILE):
        if (staging / name).exists():
            shutil.copy2(staging / name, folder / name)
    write_model_card(folder, title=f"{title}-merged")
