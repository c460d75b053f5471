"""Fine-tune GPT-2 on question/answer pairs with the transformers Trainer, fed packed rows.

`train()` is the one training path: the CLI, the app, the benchmark and the tests all call it.
This module imports torch and transformers (seconds): import it only when training.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments

from gpt2tune import events
from gpt2tune.runs import artifacts

from gpt2tune.training import adapters, results, tracking
from gpt2tune.config import TuneConfig


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False  # the user asked to stop; the model saved is the one at that step


def train(config: TuneConfig, on_event: events.EventSink = events.ignore, stop_event: threading.Event | None = None,
          fallback_to_tiny: bool = False) -> TrainResult:
    """Run one fine-tune end to end and leave a loadable model in `config.output_dir`."""
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.device import inspect_devices
    from gpt2tune.model import (
        check_and_fix_vocabulary,
        load_model,
        load_tokenizer,
        resolve_base_model,
    )
    from gpt2tune.training.oom import train_with_oom_retry
    from gpt2tune.data.prep import prepare_datasets, split_frame
    from gpt2tune.data.tokcache import default_cache_dir

    config.validate()
    tracking.check_available(config.report_to)
    output_dir = Path(config.output_dir)
    stop_event = stop_event or threading.Event()
    status = lambda message: on_event(events.Status(message))  # noqa: E731
    resume_from = _resume_checkpoint(config, output_dir)  # a missing checkpoint fails before any loading

    data = load_qa_data(config.csv, config.question_column, config.answer_column)
    status(data.report.summary())
    devices = inspect_devices(config.device, config.precision)
    status(f"device: {devices.device} ({devices.precision})")

    base_model, warning = resolve_base_model(config.base_model, fallback_to_tiny)
    if warning:
        on_event(events.Warning(warning))
    tokenizer = load_tokenizer(base_model)
    model = load_model(base_model, allow_pickle=config.allow_pickle, dropout=config.dropout)
    vocab = check_and_fix_vocabulary(model, tokenizer)
    status(vocab.action)
    model = adapters.prepare(model, config, base_model, status)  # method lora: frozen base + adapters
    artifacts.check_writable(output_dir, needed_bytes=_bytes_needed(model, config))

    train_frame, eval_frame = split_frame(data.frame, config.eval_fraction, config.seed)
    train_set, eval_set, prep = prepare_datasets(
        train_frame, eval_frame, tokenizer, config.max_length, config.train_on_answers_only, config.pack,
        cache_dir=default_cache_dir(output_dir),  # a rerun on the same data skips tokenizing
    )
    status(prep.summary())
    if resume_from:
        status(f"resuming from {resume_from}")

    def build_trainer(config, model, on_event):
        return _build_trainer(config, model, tokenizer, train_set, eval_set, devices, on_event, stop_event)

    def reload_model():
        fresh = load_model(base_model, allow_pickle=config.allow_pickle, dropout=config.dropout)
        check_and_fix_vocabulary(fresh, tokenizer)
        return adapters.prepare(fresh, config, base_model)

    # Out of memory becomes a retry with half the batch (same effective batch) or one clear line.
    trainer, stopper, train_output, config = train_with_oom_retry(
        config, model, build_trainer, resume_from, reload_model, on_event, devices
    )

    metrics = results.collect_metrics(trainer, train_output, eval_set, prep, base_model, devices)
    metrics.update(results.early_stopping_record(trainer))
    metrics["dataset"] = results.dataset_fingerprint(config.csv, len(data.frame))
    metrics.update(adapters.run_record(trainer.model, config))
    if tracking.dashboard(config):
        metrics["tracking"] = tracking.dashboard(config)
    stopped = stopper.stopped_at is not None
    samples = []
    if trainer.is_world_process_zero() and not stopped:
        samples = results.score_answers(config, trainer.model, tokenizer, train_frame, eval_frame, metrics, status)
    history = results.loss_history(trainer)
    if trainer.is_world_process_zero():
        results.save_outputs(trainer, tokenizer, config, metrics, history, output_dir, samples)
    on_event(events.Done(metrics=metrics, output_dir=str(output_dir), stopped=stopped))
    return TrainResult(output_dir=output_dir, metrics=metrics, history=history, stopped_early=stopped)


def _build_trainer(config, model, tokenizer, train_set, eval_set, devices, on_event, stop_event):
    from gpt2tune.training.callbacks import ProgressCallback, StopCallback
    from gpt2tune.data.prep import PackedCollator

    has_eval = eval_set is not None
    early_stopping = bool(has_eval and config.early_stopping_patience)
    save_steps = _save_steps(config, early_stopping, on_event)
    args = TrainingArguments(
        output_dir=str(Path(config.output_dir) / artifacts.CHECKPOINTS_DIR),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval and config.eval_steps else "no",
        eval_steps=config.eval_steps or None,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss",
        bf16=devices.precision == "bf16",
        fp16=devices.precision == "fp16",
        use_cpu=devices.device == "cpu",
        torch_compile=config.torch_compile,
        tf32=_tf32(devices),
        optim="adamw_torch_fused",  # one fused kernel for all parameters (CPU and GPU)
        ddp_find_unused_parameters=False,  # every GPT-2 weight gets a gradient: skip DDP's extra graph walk
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,  # the collator needs `seq_lengths`
        include_num_input_tokens_seen="non_padding",
        **tracking.training_arguments(config),
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    float_mask = None if model.config._attn_implementation == "sdpa" else model.dtype
    stopper = StopCallback(stop_event.is_set)
    callbacks = [ProgressCallback(on_event), stopper]
    if config.probe_questions:
        from gpt2tune.evaluation.probes import ProbeCallback

        callbacks.append(ProbeCallback(config.probe_questions, tokenizer, on_event, config.output_dir))
    if early_stopping:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = PackedTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        # Compiled, every batch gets the same width (packed rows are nearly full anyway): one graph.
        data_collator=PackedCollator(tokenizer.pad_token_id, float_mask_dtype=float_mask,
                                     pad_to_multiple_of=config.max_length if config.torch_compile else 8),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    # With tqdm off the Trainer prints every log dict; our events replace that.
    trainer.remove_callback(PrinterCallback)
    tracking.attach(trainer, config)
    return trainer, stopper


def _tf32(devices) -> bool | None:
    """TF32 tensor cores for the fp32 matmuls left under bf16 autocast, on Ampere and newer (None: torch's default)."""
    from transformers.utils import is_torch_tf32_available

    return True if devices.device == "cuda" and is_torch_tf32_available() else None


class PackedTrainer(Trainer):
    """The Trainer, counting real tokens: its own non-padding count sums the attention mask,
    which for our 4D block-diagonal mask is not a token count."""

    def _track_num_input_tokens(self, inputs):
        tokens = torch.as_tensor(inputs["num_real_tokens"], device=self.args.device, dtype=torch.int64)
        self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()

    def compute_loss(self, model, inputs, *args, **kwargs):
        inputs.pop("num_real_tokens", None)
        return super().compute_loss(model, inputs, *args, **kwargs)


def _resume_checkpoint(config: TuneConfig, output_dir: Path):
    if not config.resume:
        return None
    checkpoint = artifacts.latest_checkpoint(output_dir)
    if checkpoint is None:
        raise ValueError(f"--resume: no checkpoint found under {output_dir / artifacts.CHECKPOINTS_DIR}")
    adapters.check_resume(checkpoint, config.method)
    return checkpoint


def _save_steps(config: TuneConfig, early_stopping: bool, on_event) -> int:
    """Restoring the best eval needs a checkpoint at that very step: with early stopping, every eval
    saves one (only the best and the latest `save_total_limit` are kept)."""
    if not early_stopping or config.save_steps == config.eval_steps:
        return config.save_steps
    on_event(events.Status(f"early stopping: saving a checkpoint at every eval (every {config.eval_steps} steps, "
                           f"not {config.save_steps or 'never'}) so the best one can be restored"))
    return config.eval_steps


def _bytes_needed(model, config: TuneConfig) -> int:
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    final = (weights if config.method == "full" else trained) + (weights if config.merge_lora else 0)
    # final weights (a LoRA run: its adapters, and merged weights if asked)
    # + each kept checkpoint (trained weights + two AdamW moments) + slack
    return final + trained * 3 * config.save_total_limit + 50 * 2**20
