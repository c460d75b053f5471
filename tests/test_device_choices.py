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
    monkeypatch.setenv(device.BF16_SPEEDUP_ENV, "4.0")
    assert _pick_precision(_report("cpu"), "auto") == ("bf16", "CPU multiplies bf16 matrices 4.0x faster than "
                                                               "fp32 (set by GPT2TUNE_BF16_SPEEDUP)")
    monkeypatch.setenv(device.BF16_SPEEDUP_ENV, "0.7")
    assert _pick_precision(_report("cpu"), "auto")[0] == "fp32"
    monkeypatch.setenv(device.BF16_SPEEDUP_ENV, str(device.BF16_MIN_SPEEDUP))
    assert _pick_precision(_report("cpu"), "auto")[0] == "bf16"
    # without them bf16 is emulated: fp32, and nothing is measured
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda *_: 1 / 0)
    assert _pick_precision(_report("cpu"), "auto")[0] == "fp32"
    assert _pick_precision(_report("cpu"), "bf16") == ("bf16", "as requested")


def _timer(ratios):
    """A probe timer giving these fp32/bf16 readings in turn (fp32 1 s, bf16 1/ratio s)."""
    readings = iter(ratios)
    return lambda: (1.0, 1.0 / next(readings))


def test_one_outlier_reading_does_not_flip_the_choice():
    """A CPU that runs bf16 at 0.63x fp32 (a Xeon without AMX), read once at 26x during a neighbour's
    burst of load: the median of the readings still says fp32. A fake clock: the budget runs out after
    the readings given, whatever this machine's speed."""
    from gpt2tune.device import BF16_MIN_SPEEDUP, measure_bf16_speedup

    ticks = iter(range(100))
    measured = measure_bf16_speedup(timer=_timer([0.63, 26.3, 0.61, 0.66, 0.6, 0.64, 0.62]), budget_s=3,
                                    clock=lambda: next(ticks))
    assert measured.ratio < BF16_MIN_SPEEDUP
    # seven readings: with the outlier among the last five they spread over more than 10 %
    assert measured.readings[1] == pytest.approx(26.3) and len(measured.readings) == 7 and measured.steady
    # and the other way round: one slow reading on a CPU where bf16 wins does not make it fp32
    steady = measure_bf16_speedup(timer=_timer([4.0, 4.1, 0.5, 4.05, 3.95, 4.0, 4.02, 4.0, 3.98]),
                                  clock=lambda: 0.0)
    assert steady.ratio >= BF16_MIN_SPEEDUP
    assert len(steady.readings) == 8 and steady.steady  # stopped once five in a row agreed within 10 %


def test_the_ratio_is_measured_once_per_cpu_and_shape_then_cached(tmp_path, monkeypatch):
    import gpt2tune.device as device

    monkeypatch.delenv(device.BF16_SPEEDUP_ENV, raising=False)
    monkeypatch.setenv(device.PROBE_CACHE_ENV, str(tmp_path))
    calls = []

    def measure(shape):
        calls.append(shape)
        return device.measure_bf16_speedup(shape, timer=_timer([3.0] * 5), clock=lambda: 0.0)

    shape = device.ProbeShape.of_run(hidden=384, batch_size=8, max_length=320)
    first = device.cpu_bf16_speedup(shape, measure=measure)
    again = device.cpu_bf16_speedup(shape, measure=measure)
    assert (first.cached, again.cached) == (False, True) and again.ratio == pytest.approx(3.0)
    assert calls == [shape]
    assert "cached for this CPU" in again.source() and "measured now" in first.source()
    # another shape (another model or row length) is measured on its own
    device.cpu_bf16_speedup(device.ProbeShape(tokens=64, hidden=64), measure=measure)
    assert len(calls) == 2
    # a broken cache file is measured again, not an error
    device.probe_cache_file().write_text("{not json")
    assert device.cpu_bf16_speedup(shape, measure=measure).cached is False
    # a measurement that never settled decides its own run only: the next run measures again
    noisy = device.ProbeShape(tokens=128, hidden=128)
    unsteady = lambda shape: device.measure_bf16_speedup(shape, timer=_timer([1.0, 3.0] * 3), budget_s=0)  # noqa: E731
    assert device.cpu_bf16_speedup(noisy, measure=unsteady).cached is False
    assert device.cpu_bf16_speedup(noisy, measure=unsteady).cached is False


def test_the_probe_shape_is_the_runs_own_and_bounded():
    from gpt2tune.device import ProbeShape

    assert ProbeShape.of_run(hidden=384, batch_size=2, max_length=64) == ProbeShape(tokens=128, hidden=384)
    big = ProbeShape.of_run(hidden=768, batch_size=8, max_length=1024)
    assert big.hidden == 768 and big.tokens == 512  # rows capped: one reading stays short


def test_a_given_ratio_is_used_and_said(monkeypatch):
    import gpt2tune.device as device

    monkeypatch.setenv(device.BF16_SPEEDUP_ENV, "2.5")
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    report = _report("cpu")
    assert _pick_precision(report, "auto", device.ProbeShape()) == (
        "bf16", f"CPU multiplies bf16 matrices 2.5x faster than fp32 (set by {device.BF16_SPEEDUP_ENV})")
    assert report.bf16_speedup["ratio"] == 2.5
    monkeypatch.setenv(device.BF16_SPEEDUP_ENV, "fast")
    with pytest.raises(ValueError, match="GPT2TUNE_BF16_SPEEDUP must be a number"):
        _pick_precision(report, "auto", device.ProbeShape())


def test_the_bf16_probe_measures_a_real_ratio(tmp_path, monkeypatch):
    """The probe times real products: a positive, finite ratio from several readings."""
    import math

    import gpt2tune.device as device

    measured = device.measure_bf16_speedup(device.ProbeShape(tokens=64, hidden=64), budget_s=0.2)
    assert 0.05 < measured.ratio < 50 and math.isfinite(measured.ratio)
    assert len(measured.readings) >= device.PROBE_MIN_READINGS


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
