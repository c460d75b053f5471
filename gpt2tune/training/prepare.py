"""Everything a run sets up before the first step: data, devices, model, vocabulary, split, rows.

`prepare()` is the one set-up sequence: the `check` command (and the Checks tab) stops after it and
reports; `train()` goes on to the Trainer. Each stage says what it found through `on_event`, and the
data is tokenized once: the same token ids make the training rows and, for a check, the lengths
of the dataset report.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from gpt2tune import events
from gpt2tune.config import TuneConfig
from gpt2tune.runs.resolved import Resolved


@dataclass
class Prepared:
    config: TuneConfig  # the request, as given (max_length 0 = auto)
    resolved: Resolved  # what the run uses: the length, columns, model loaded, split sizes, device
    data: object  # data.load.QAData: the cleaned frame and its DataReport
    devices: object  # device.DeviceReport
    base_model: str  # what was loaded: the name asked for, its cached copy, or the offline tiny model
    tokenizer: object
    model: object
    vocab: object  # model.VocabReport
    train_at: object  # numpy positions in data.frame of the split's rows, in training order
    eval_at: object
    train_set: object  # datasets.Dataset of packed rows
    eval_set: object  # same, or None without an eval split
    prep: object  # data.prep.PrepReport
    warnings: list[str] = field(default_factory=list)
    dataset: object = None  # data.report.DatasetReport: lengths and the length policy, duplicates, leakage, languages
    expanded_train: object = None  # the training frame when answer_lists=each made other rows than the file's

    # The split's frames are made when asked (answer scoring, after training): a million rows of text
    # are not copied while the rows are prepared.
    @property
    def train_frame(self):
        if self.expanded_train is not None:
            return self.expanded_train
        from gpt2tune.data.tables import take_rows

        return take_rows(self.data.frame, self.train_at)

    @property
    def eval_frame(self):
        from gpt2tune.data.tables import take_rows

        return take_rows(self.data.frame, self.eval_at)


def prepare(config: TuneConfig, on_event: events.EventSink = events.ignore, fallback_to_tiny: bool = False,
            output_dir: str | Path | None = None) -> Prepared:
    """Load and check everything a run needs, in the order a failure is cheapest to find.

    output_dir: where a training run writes; its free space for the weights and checkpoints is
    checked before training, and its caches let a rerun on the same data skip cleaning and
    tokenizing. None (a check) writes nothing.
    """
    from gpt2tune.data import tokcache
    from gpt2tune.data.answers import expand_answers
    from gpt2tune.data.load import load_config_data
    from gpt2tune.data.prep import encode_frame, prepare_datasets, split_positions
    from gpt2tune.data.report import DatasetReport, dataset_report
    from gpt2tune.data.tables import take_rows
    from gpt2tune.device import ProbeShape, check_device_available, inspect_devices
    from gpt2tune.heap import release_freed_memory
    from gpt2tune.model import (check_and_fix_vocabulary, context_length, load_model, load_tokenizer, model_config,
                                resolve_base_model)
    from gpt2tune.runs import diskspace

    check_device_available(config.device)
    status = lambda message: on_event(events.Status(message))  # noqa: E731
    # A training run keeps the cleaned file, its token ids, its report and its rows in a cache beside
    # the run folder, each under a hash of what made it: a rerun on the same data starts at once.
    cache_dir = None
    if output_dir is not None:
        cache_dir = tokcache.default_cache_dir(Path(output_dir))
    data = load_config_data(config, cache_dir)  # the file, or the Hub dataset when config.dataset is set
    release_freed_memory(collect=False)  # each stage's peak is its own: what one freed, the next gets
    status(data.report.summary())

    base_model, warning = resolve_base_model(config.base_model, fallback_to_tiny)
    if warning:
        on_event(events.Warning(warning))
    tokenizer = load_tokenizer(base_model)
    shape = model_config(base_model, config.allow_pickle)  # the weights load once the data is ready
    context = context_length(shape)

    # Lengths, duplicates, leakage and languages, from token ids made once for the report and the rows.
    # The length policy picks max_length when it is auto (0): the run trains with that effective value.
    @functools.cache
    def encoded():  # read or made only when the report or the rows are not cached: a rerun needs neither
        ids = encode_frame(data.frame, tokenizer, cache_dir, data.fingerprint)
        release_freed_memory(collect=False)
        return ids

    options = report_options(config, context)  # makes both the report and its cache key

    def report():
        return dataset_report(data.frame, tokenizer, encoded=encoded(), duplicates=data.report.duplicates, **options)

    if cache_dir is not None and data.fingerprint:
        key = tokcache.report_key(data.fingerprint, tokenizer, *sorted(options.items()))
        dataset = tokcache.cached(cache_dir / ".reports", key, report, DatasetReport.write, DatasetReport.read)
    else:
        dataset = report()
    release_freed_memory(collect=False)
    status(dataset.summary())
    max_length = dataset.length.max_length  # the length used; config.max_length stays as asked (0 = auto)
    # The precision follows from the run's own shapes (a CPU's bf16 probe times its products): known now.
    devices = inspect_devices(config.device, config.precision, config.torch_compile,
                              ProbeShape.of_run(shape.hidden_size, config.batch_size, max_length))
    status(devices.choices())  # device, precision and compile, and why

    train_at, eval_at = split_positions(len(data.frame), config.eval_fraction, config.seed)
    expanded = None
    if config.answer_lists == "each":  # one example per acceptable answer: other rows than were tokenized
        expanded = expand_answers(take_rows(data.frame, train_at), config.answer_lists)
    # the split is a function of the data and these settings: it names both frames without hashing them
    split_fingerprint = data.fingerprint and "|".join(
        map(str, (data.fingerprint, config.eval_fraction, config.seed, config.answer_lists)))
    frames = (expanded, None)
    if not split_fingerprint:  # the cache key hashes the split's text instead
        frames = (expanded if expanded is not None else take_rows(data.frame, train_at), take_rows(data.frame, eval_at))
    release_freed_memory(collect=False)
    # Upper bound of the prepared rows on disk: ids, labels and positions of every token (int32).
    cache_bytes = len(data.frame) * max_length * 12
    with diskspace.disk_full_as_one_line(cache_dir or Path("."), "the prepared-data cache", cache_bytes):
        train_set, eval_set, prep = prepare_datasets(
            *frames, tokenizer, max_length, config.train_on_answers_only, config.pack,
            cache_dir=cache_dir, encoded=lambda: (None if expanded is not None else (encoded(), train_at),
                                                  (encoded(), eval_at)),
            overlong=config.overlong, fingerprint=split_fingerprint,
        )
    status(prep.summary())
    encoded.cache_clear()
    release_freed_memory(collect=False)
    # The weights last: the data's peak memory (a million rows: about 1 GiB) and the model's never add up.
    model = load_model(base_model, allow_pickle=config.allow_pickle, dropout=config.dropout)
    vocab = check_and_fix_vocabulary(model, tokenizer)
    status(vocab.action)
    from gpt2tune.training import adapters

    model = adapters.prepare(model, config, base_model, status)  # method lora: frozen base + adapters
    if output_dir is not None:
        from gpt2tune.runs import artifacts

        artifacts.check_writable(Path(output_dir), needed_bytes=bytes_needed(model, config))
    resolved = Resolved(length=dataset.length, question_column=data.report.question_column,
                        answer_column=data.report.answer_column, base_model=base_model,
                        train_examples=prep.train_examples, eval_examples=prep.eval_examples,
                        truncated_train=prep.truncated_train, truncated_eval=prep.truncated_eval,
                        device=devices.device, precision=devices.precision, compile=bool(devices.compile),
                        batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation_steps)
    return Prepared(config=config, resolved=resolved, data=data, devices=devices, base_model=base_model,
                    tokenizer=tokenizer, model=model, vocab=vocab, train_at=train_at, eval_at=eval_at, train_set=train_set,
                    eval_set=eval_set, prep=prep, warnings=[warning] if warning else [], dataset=dataset,
                    expanded_train=expanded)


def report_options(config: TuneConfig, context: int) -> dict:
    """The options a dataset report is made with (`data.report.dataset_report`), from the settings and
    the model's context: one set for `check`, `train` and the Data tab's preview, so the preview
    counts what trains."""
    return {"max_length": config.max_length, "eval_fraction": config.eval_fraction, "seed": config.seed,
            "context": context, "overlong": config.overlong}


def preview_data(config: TuneConfig, context: int, tokenizer):
    """The data a TuneConfig names, loaded and measured as `prepare` does (same loader, same report,
    same options), without the model's weights or any file written: (QAData, DatasetReport)."""
    from gpt2tune.data.load import load_config_data
    from gpt2tune.data.report import dataset_report

    data = load_config_data(config)
    return data, dataset_report(data.frame, tokenizer, duplicates=data.report.duplicates,
                                **report_options(config, context))


def weight_bytes(model, trainable_only: bool = False) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad or not trainable_only)


def bytes_needed(model, config: TuneConfig) -> int:
    """Free space the run needs: the final weights and its checkpoints, less the checkpoints already
    in the folder that rotation (save_total_limit) will delete as new ones are written."""
    from gpt2tune.runs import artifacts, diskspace

    early_stopping = bool(config.eval_fraction and config.eval_steps and config.early_stopping_patience)
    existing = diskspace.folder_bytes(Path(config.output_dir) / artifacts.CHECKPOINTS_DIR)
    weights = weight_bytes(model)
    # a LoRA run saves (and checkpoints) its adapters only, plus the merged full weights when asked
    trained = weights if config.method == "full" else weight_bytes(model, trainable_only=True)
    merged = weights if config.method == "lora" and config.merge_lora else 0
    return diskspace.space_needed(trained, config.save_total_limit, bool(config.save_steps) or early_stopping,
                                  existing) + merged
