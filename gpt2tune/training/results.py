"""What a finished run leaves behind: its metrics, loss history, answer scores and output folder.

`gpt2tune.training.train` calls these once the Trainer is done; they only read the Trainer's state.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gpt2tune.runs import artifacts
from gpt2tune.config import TuneConfig
from gpt2tune.evaluation.metrics import perplexity


def collect_metrics(trainer, train_output, eval_set, prep, base_model, devices) -> dict:
    metrics = {
        "base_model": base_model,
        "device": devices.device,
        "precision": devices.precision,
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
    import hashlib

    digest = hashlib.sha256()
    with open(csv, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"file": Path(csv).name, "rows": rows, "sha256": digest.hexdigest()}


def score_answers(config: TuneConfig, model, tokenizer, train_frame, eval_frame, metrics: dict, status) -> list[dict]:
    """Answer metrics and the memorisation verdict into `metrics`; returns a few eval Q&As."""
    from gpt2tune.evaluation.evaluate import answer_evaluation

    if not config.eval_answer_samples or len(eval_frame) == 0:
        return []
    n = min(config.eval_answer_samples, len(eval_frame))
    status(f"answering {n} eval and {min(n, len(train_frame))} training questions (exact match, F1, ROUGE-L)...")
    result = answer_evaluation(model, tokenizer, train_frame, eval_frame, n, config.seed)
    metrics.update(result.metrics())
    status(f"answers: exact match {result.eval_scores['exact_match']:.3f}, F1 {result.eval_scores['f1']:.3f}, "
           f"ROUGE-L {result.eval_scores['rouge_l']:.3f}\n{result.verdict['verdict']}: {result.verdict['text']}")
    return result.samples


def save_outputs(trainer, tokenizer, config, metrics, history, output_dir: Path, samples=()) -> None:
    from gpt2tune.hub.card import SAMPLES_FILE, write_loss_plot, write_model_card

    staging = output_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of a crashed save must not be published
    trainer.save_model(str(staging))  # saves model (safetensors) and tokenizer; a LoRA run's adapters only
    tokenizer.save_pretrained(str(staging))
    config.save(staging / artifacts.CONFIG_FILE)
    artifacts.write_json(staging / artifacts.METRICS_FILE, metrics)
    artifacts.write_json(staging / artifacts.HISTORY_FILE, history)
    artifacts.write_json(staging / SAMPLES_FILE, list(samples))
    write_loss_plot(history, staging)
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
    for name in (artifacts.CONFIG_FILE, artifacts.METRICS_FILE, artifacts.HISTORY_FILE, SAMPLES_FILE, LOSS_PLOT_FILE):
        if (staging / name).exists():
            shutil.copy2(staging / name, folder / name)
    write_model_card(folder, title=f"{title}-merged")
