"""Fine-tune GPT-2 on question/answer pairs with the transformers Trainer, fed packed rows.

`train()` is the one training path: the CLI, the app, the benchmark and the tests all call it.
This module imports torch and transformers (seconds): import it only when training.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments

from gpt2tune import events
from gpt2tune.runs import artifacts, diskspace

from gpt2tune.training import adapters, results, tracking
from gpt2tune.training import estimate as run_estimate
from gpt2tune.training.limits import trainer_max_steps
from gpt2tune.training.divergence import DivergenceCallback, check_final_losses
from gpt2tune.config import TuneConfig


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False  # the user asked to stop; the model saved is the one at that step


def train(config: TuneConfig, on_event: events.EventSink = events.ignore, stop_event: threading.Event | None = None,
          fallback_to_tiny: bool = False) -> TrainResult:
    """Run one fine-tune end to end and leave a loadable model in `config.output_dir`.

    The output folder records the run (`gpt2tune.runs.record`): its resolved settings, its data's
    fingerprint, its state and every event. A resume (`config.resume`) continues that run with the
    settings it recorded; only max_steps and epochs may be changed."""
    from gpt2tune.runs.record import RunRecorder

    config.validate()
    recorder = RunRecorder(config, on_event)  # a refused resume fails here, before anything is written
    with recorder:
        return _train(recorder.config, recorder, stop_event, fallback_to_tiny)


def _train(config: TuneConfig, on_event: events.EventSink, stop_event: threading.Event | None,
           fallback_to_tiny: bool) -> TrainResult:
    from gpt2tune.runs.record import totals_over_segments
    from gpt2tune.training.prepare import bytes_needed, prepare, weight_bytes

    tracking.check_available(config.report_to)
    clock = results.RunClock()  # where the wall time goes, for metrics.json
    output_dir = Path(config.output_dir)
    stop_event = stop_event or threading.Event()
    status = lambda message: on_event(events.Status(message))  # noqa: E731
    resume_from = _resume_checkpoint(config, output_dir)  # a missing checkpoint fails before any loading

    prepared = prepare(config, on_event, fallback_to_tiny, output_dir=output_dir)
    on_event(_settings_event(config, prepared))
    fingerprint = results.source_fingerprint(config, prepared.data)
    # a `check --estimate` (or the app's estimate) of these very settings: compared with what happens
    estimated = None if config.resume else run_estimate.recall(run_estimate.settings_key(prepared, fingerprint))
    if estimated is not None:
        status(f"estimated before start: {estimated.summary()}")
    clock.mark("preparation")
    if resume_from:
        status(f"resuming from {resume_from}")

    # Out of memory becomes a retry with half the batch (same effective batch) or one clear line.
    model = prepared.model
    with diskspace.disk_full_as_one_line(output_dir / artifacts.CHECKPOINTS_DIR, "a checkpoint",
                                         bytes_needed(model, config),
                                         on_full=lambda: artifacts.remove_incomplete_checkpoints(output_dir)):
        trainer, stopper, train_output, config = _train_with_retry(prepared, resume_from, on_event, stop_event)

    # A NaN/inf loss stops the run here: nothing below (scores, model, card, metrics) is written.
    divergence = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, DivergenceCallback))
    divergence.check(config.learning_rate)
    tokenizer, train_frame, eval_frame = prepared.tokenizer, prepared.train_frame, prepared.eval_frame
    clock.mark("training", trainer.state.log_history)  # periodic evals move to "evaluation"
    metrics = results.collect_metrics(trainer, train_output, prepared.eval_set, prepared.prep, prepared.base_model,
                                      prepared.devices)
    check_final_losses(metrics, trainer.state.global_step, config.learning_rate)
    clock.mark("evaluation")
    metrics.update(results.early_stopping_record(trainer))
    metrics["dataset"] = fingerprint
    if estimated is not None:
        metrics["estimate"] = run_estimate.against_actual(estimated, metrics, trainer.state.log_history)
        status(run_estimate.comparison_line(metrics["estimate"]))
    metrics.update(totals_over_segments(output_dir, trainer.state.log_history, metrics))
    metrics.update(results.data_record(prepared.data.report, prepared.dataset))
    resolved = results.final_resolved(trainer, config, prepared.resolved)
    on_event(_settings_event(prepared.config, prepared, resolved))  # the record now has the steps the run took
    metrics.update(adapters.run_record(trainer.model, config))
    if tracking.dashboard(config):
        metrics["tracking"] = tracking.dashboard(config)
    stopped = stopper.stopped_at is not None
    samples = []
    if trainer.is_world_process_zero() and not stopped:
        with results.training_precision(prepared.devices):
            samples = results.record_answer_scores(config, trainer.model, tokenizer, train_frame, eval_frame,
                                                   metrics, status)
    clock.mark("answer_scoring")
    metrics["time_s"] = clock.split()
    history = results.loss_history(trainer)
    if trainer.is_world_process_zero():
        nearest, samples = results.nearest_index(train_frame, samples, metrics, status)  # the card shows it
        final_bytes = diskspace.space_needed(weight_bytes(model), save_total_limit=0, saves_checkpoints=False)
        with diskspace.disk_full_as_one_line(output_dir, "the model", final_bytes,
                                             on_full=lambda: results.remove_staging(output_dir)):
            results.save_outputs(trainer, tokenizer, _as_recorded(prepared.config), resolved, metrics, history,
                                 output_dir, samples, nearest=nearest)
    on_event(events.Done(metrics=metrics, output_dir=str(output_dir), stopped=stopped))
    return TrainResult(output_dir=output_dir, metrics=metrics, history=history, stopped_early=stopped)


def _train_with_retry(prepared, resume_from, on_event, stop_event):
    """Run `trainer.train()`; out of memory becomes a retry with half the batch (same effective
    batch) or one clear line (`oom.OutOfMemory`). Returns (trainer, stopper, train output, config used).

    Where a retry starts: before the first optimizer step the weights are untouched, so it simply
    starts again; later, from the last checkpoint this run wrote (the Trainer restores weights,
    optimizer and data position; the unchanged effective batch keeps steps and data order valid),
    or, with no checkpoint yet, from freshly loaded base weights.
    """
    from gpt2tune.model import parameter_count
    from gpt2tune.training import oom

    config, model, devices = prepared.config, prepared.model, prepared.devices
    saved = []

    def record(event):
        if isinstance(event, events.Checkpoint):
            saved.append(event.path)
        on_event(event)

    while True:
        trainer, stopper = _build_trainer(config, prepared.resolved.max_length, model, prepared.tokenizer,
                                          prepared.train_set, prepared.eval_set, devices, record, stop_event)
        try:
            output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            return trainer, stopper, output, config
        except Exception as error:
            if not oom.is_out_of_memory(error):
                raise
            message = oom.explain(config, prepared.resolved.max_length, model.config, parameter_count(model),
                                  devices.device, devices.precision)
            steps_done = trainer.state.global_step
        # Outside the except block: the traceback, and the tensors its frames hold, are gone.
        smaller = oom.halved(config) if config.auto_reduce_batch_on_oom else None
        del trainer, stopper
        model.zero_grad(set_to_none=True)
        oom.free_memory(devices.device)
        if smaller is None:
            raise oom.OutOfMemory(message)
        if steps_done:
            resume_from = saved[-1] if saved else resume_from
            if resume_from is None:
                model = _reload_base_model(prepared)
        on_event(events.Warning(oom.retry_message(message, smaller, resume_from)))
        config = smaller


def _reload_base_model(prepared):
    """Fresh base weights, for a retry that has no checkpoint to go back to."""
    from gpt2tune.model import check_and_fix_vocabulary, load_model

    config = prepared.config
    model = load_model(prepared.base_model, allow_pickle=config.allow_pickle, dropout=config.dropout)
    check_and_fix_vocabulary(model, prepared.tokenizer)
    return adapters.prepare(model, config, prepared.base_model)


def _as_recorded(config: TuneConfig) -> TuneConfig:
    """The settings as a run folder keeps them: as asked, with the data file's full path."""
    return dataclasses.replace(config, csv=str(Path(config.csv).resolve()), resume=False)


def _settings_event(config: TuneConfig, prepared, resolved=None) -> events.Settings:
    """The settings as asked, which data (file, rows, SHA-256), and what the run resolved from them."""
    fingerprint = results.dataset_fingerprint(config.csv, len(prepared.data.frame))
    return events.Settings(config=_as_recorded(config).to_dict(), data=fingerprint,
                           resolved=(resolved or prepared.resolved).to_dict())


def _build_trainer(config, max_length: int, model, tokenizer, train_set, eval_set, devices, on_event, stop_event):
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
        max_steps=trainer_max_steps(config, len(train_set)),
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a NaN step loss must reach the log, where DivergenceCallback stops the run
        eval_strategy="steps" if has_eval and config.eval_steps else "no",
        eval_steps=config.eval_steps or None,
        save_strategy="steps" if save_steps else "no",  # "no" still saves when asked: by time, at a stop
        save_steps=save_steps or 500,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss",
        bf16=devices.precision == "bf16",
        fp16=devices.precision == "fp16",
        use_cpu=devices.device == "cpu",
        torch_compile=devices.compile,
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
    stopper = StopCallback(stop_event.is_set, config.max_minutes, on_event)
    callbacks = [ProgressCallback(on_event), stopper, DivergenceCallback()]
    if config.probe_questions:
        from gpt2tune.evaluation.probes import ProbeCallback

        callbacks.append(ProbeCallback(config.probe_questions, tokenizer, on_event, config.output_dir))
    if early_stopping:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    from gpt2tune.training.saving import CheckpointTiming

    callbacks.append(CheckpointTiming(config.save_minutes))  # last: it sees the stop and the flow's decisions
    trainer = PackedTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        # Compiled, every batch gets the same width (packed rows are nearly full anyway): one graph.
        data_collator=PackedCollator(tokenizer.pad_token_id, float_mask_dtype=float_mask,
                                     pad_to_multiple_of=max_length if devices.compile else 8),
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

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs.pop("num_real_tokens", None)
        if self.label_smoother is not None or self.compute_loss_func is not None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # The LM head only where a label counts; normalised as the Trainer's own loss (see gpt2tune/loss.py).
        from gpt2tune.loss import labelled_loss

        items = num_items_in_batch if self.model_accepts_loss_kwargs else None
        loss = labelled_loss(model, inputs, items) * trainer_loss_scale(self, items)
        return (loss, {"loss": loss}) if return_outputs else loss


def trainer_loss_scale(trainer, num_items_in_batch) -> int:
    """The factor `Trainer.compute_loss` applies after the model's loss (transformers 5): with tokens
    averaged across devices, each rank's sum was divided by the token count of ALL ranks, and DDP
    averages gradients over ranks, so the loss is multiplied back by the number of processes."""
    if (trainer.args.average_tokens_across_devices
            and (trainer.model_accepts_loss_kwargs or trainer.compute_loss_func)
            and num_items_in_batch is not None):
        scale = trainer.accelerator.num_processes // trainer.get_tp_size()
        return scale if trainer.args.n_gpu <= 1 else trainer.args.n_gpu
    return 1


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
