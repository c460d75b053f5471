"""The pre-flight report: dataset summary, vocabulary check and devices, before any training."""

from __future__ import annotations

from dataclasses import dataclass

from gpt2tune.config import TuneConfig


@dataclass
class CheckReport:
    data: object  # data.DataReport
    prep: object  # prep.PrepReport
    vocab: object  # model.VocabReport
    devices: object  # device.DeviceReport
    base_model: str
    parameters: int
    warnings: list[str]
    dataset: object = None  # report.DatasetReport: lengths, duplicates, train/eval leakage
    memory: object = None  # memory.MemoryEstimate: full fine-tuning and LoRA side by side

    def summary(self) -> str:
        sections = [
            ("Data", self.data.summary() + "\n" + self.prep.summary()),
            *([("Lengths, duplicates, leakage", self.dataset.summary())] if self.dataset is not None else []),
            ("Model", f"{self.base_model}: {self.parameters / 1e6:.1f}M parameters\n{self.vocab.summary()}"),
            ("Devices", self.devices.summary()),
            *([("Training memory (estimate)", self.memory.summary())] if self.memory is not None else []),
        ]
        text = "\n\n".join(f"== {title} ==\n{body}" for title, body in sections)
        return "\n".join(f"warning: {w}" for w in self.warnings) + ("\n\n" if self.warnings else "") + text


def run_checks(config: TuneConfig, fallback_to_tiny: bool = False) -> CheckReport:
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.device import inspect_devices
    from gpt2tune.model import check_and_fix_vocabulary, load_model_and_tokenizer, parameter_count, resolve_base_model
    from gpt2tune.data.prep import prepare_datasets, split_frame
    from gpt2tune.data.report import dataset_report

    from gpt2tune.training.memory import estimate

    config.validate()
    data = load_qa_data(config.csv, config.question_column, config.answer_column)
    base_model, warning = resolve_base_model(config.base_model, fallback_to_tiny)
    model, tokenizer = load_model_and_tokenizer(base_model, allow_pickle=config.allow_pickle)
    vocab = check_and_fix_vocabulary(model, tokenizer)
    train_frame, eval_frame = split_frame(data.frame, config.eval_fraction, config.seed)
    _, _, prep = prepare_datasets(train_frame, eval_frame, tokenizer, config.max_length,
                                  config.train_on_answers_only, config.pack)
    devices = inspect_devices(config.device, config.precision)
    return CheckReport(
        data=data.report,
        prep=prep,
        vocab=vocab,
        devices=devices,
        base_model=base_model,
        parameters=parameter_count(model),
        warnings=[warning] if warning else [],
        dataset=dataset_report(data.frame, tokenizer, config.max_length, config.eval_fraction, config.seed),
        memory=estimate(config, model, devices.device, devices.precision),
    )
