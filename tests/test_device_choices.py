"""torch.compile and precision picked per device class, with the reason said in one line."""

from __future__ import annotations

import pytest

from gpt2tune.config import TuneConfig
from gpt2tune.device import DeviceReport, _pick_compile, _pick_precision


def _report(device: str, bf16_gpu: bool = True) -> DeviceReport:
    gpus = [{"name": "GPU", "memory_gb": 80.0, "bf16": bf16_gpu, "capability": "9.0"}] if device == "cuda" else []
    return DeviceReport(cuda_available=device == "cuda", cuda_devices=gpus, device=device)


@pytest.mark.parametrize("device, expected", [("cuda", True), ("cpu", False), ("mps", False)])
def test_auto_compiles_on_cuda_only(device, expected):
    assert _pick_compile(_report(device), "auto")[0] is expected


@pytest.mark.parametrize("requested, expected", [("on", True), ("off", False), (True, True), (False, False)])
def test_an_explicit_choice_wins(requested, expected):
    assert _pick_compile(_report("cpu"), requested) == (expected, "as requested")
    assert _pick_compile(_report("cuda"), requested) == (expected, "as requested")


def test_precision_rule_per_device_class(monkeypatch):
    import gpt2tune.device as device

    assert _pick_precision(_report("cuda"), "auto")[0] == "bf16"
    assert _pick_precision(_report("cuda", bf16_gpu=False), "auto")[0] == "fp16"
    # a CPU with bf16 instructions: decided by how much faster they multiply, measured
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 4.0)
    assert _pick_precision(_report("cpu"), "auto") == ("bf16", "CPU multiplies bf16 matrices 4.0x faster than "
                                                               "fp32, measured now")
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 0.7)
    assert _pick_precision(_report("cpu"), "auto")[0] == "fp32"
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: device.BF16_MIN_SPEEDUP)
    assert _pick_precision(_report("cpu"), "auto")[0] == "bf16"
    # without them bf16 is emulated: fp32, and nothing is measured
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 1 / 0)
    assert _pick_precision(_report("cpu"), "auto")[0] == "fp32"
    assert _pick_precision(_report("cpu"), "bf16") == ("bf16", "as requested")


def test_the_bf16_probe_measures_a_real_ratio():
    """The probe times real products: a positive, finite ratio, measured once per process."""
    import math

    import gpt2tune.device as device

    ratio = device.cpu_bf16_speedup()
    assert 0.05 < ratio < 50 and math.isfinite(ratio)
    assert device.cpu_bf16_speedup() == ratio


def test_the_log_line_names_every_choice_and_why():
    report = _report("cuda")
    report.precision, report.reason = _pick_precision(report, "auto")
    report.compile, report.compile_reason = _pick_compile(report, "auto")
    line = report.choices()
    assert line.startswith("device: cuda, bf16 (GPU supports bf16") and "torch.compile on (GPU: fused kernels" in line
    assert "\n" not in line


def test_config_accepts_auto_on_off_and_older_booleans():
    for value in ("auto", "on", "off", True, False):
        TuneConfig(torch_compile=value).validate()
    with pytest.raises(ValueError, match="torch_compile must be one of auto, on, off"):
        TuneConfig(torch_compile="sometimes").validate()
    assert TuneConfig().torch_compile == "auto"
    with pytest.raises(ValueError, match="answer_scoring_seconds"):
        TuneConfig(answer_scoring_seconds=-1).validate()
