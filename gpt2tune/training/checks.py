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
    estimate: object = None  # estimate.RunEstimate: a few steps measured (check --estimate)

    def summary(self) -> str:
        sections = [
            ("Data", self.data.summary() + "\n" + self.prep.summary()),
            *([("Lengths, duplicates, leakage", self.dataset.summary())] if self.dataset is not None else []),
            ("Model", f"{self.base_model}: {self.parameters / 1e6:.1f}M parameters\n{self.vocab.summary()}"),
            ("Devices", self.devices.summary()),
            *([("Training memory (estimate)", self.memory.summary())] if self.memory is not None else []),
            *([("Time and memory (measured)", self.estimate.summary())] if self.estimate is not None else []),
        ]
        text = "\n\n".join(f"== {title} ==\n{body}" for title, body in sections)
        return "\n".join(f"warning: {w}" for w in self.warnings) + ("\n\n" if self.warnings else "") + text


def run_checks(config: TuneConfig, fallback_to_tiny: bool = False, measure: bool = False) -> CheckReport:
    """The set-up of a training run (`prepare`), stopped before training and reported.

    measure: also time a few real training steps (`step_probe.probe`) and keep the estimate for the run."""
    from gpt2tune.model import parameter_count
    from gpt2tune.training.memory import estimate
    from gpt2tune.training.prepare import prepare

    config.validate()
    prepared = prepare(config, fallback_to_tiny=fallback_to_tiny)
    measured = None
    if measure:
        from gpt2tune.training import estimate as run_estimate
        from gpt2tune.training.step_probe import probe

        measured = probe(prepared)
        if not measured.skipped:
            run_estimate.remember(run_estimate.settings_key(prepared), measured)
    return CheckReport(
        data=prepared.data.report,
        prep=prepared.prep,
        vocab=prepared.vocab,
        devices=prepared.devices,
        base_model=prepared.base_model,
        parameters=parameter_count(prepared.model),
        warnings=prepared.warnings,
        dataset=prepared.dataset,
        memory=estimate(config, prepared.resolved.max_length, prepared.model, prepared.devices.device,
                        prepared.devices.precision),
        estimate=measured,
    )
