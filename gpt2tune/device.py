"""Which hardware is there, and the best device and precision to train on it."""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field


@dataclass
class DeviceReport:
    cuda_available: bool
    cuda_devices: list[dict] = field(default_factory=list)  # name, memory_gb, bf16, capability
    mps_available: bool = False
    cpu_threads: int = 1
    cpu_count: int = 1
    device: str = "cpu"  # the pick
    precision: str = "fp32"  # the pick
    reason: str = ""
    compile: bool = False  # the pick for torch.compile
    compile_reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = []
        for i, gpu in enumerate(self.cuda_devices):
            lines.append(
                f"CUDA:{i} {gpu['name']}, {gpu['memory_gb']:.1f} GB, bf16 {'yes' if gpu['bf16'] else 'no'}"
            )
        if not self.cuda_available:
            lines.append("CUDA: not available")
        lines.append(f"Apple MPS: {'available' if self.mps_available else 'not available'}")
        lines.append(f"CPU: {self.cpu_count} cores, torch uses {self.cpu_threads} threads")
        lines.append(f"Chosen: {self.device} with {self.precision} ({self.reason})")
        lines.append(f"torch.compile: {'on' if self.compile else 'off'} ({self.compile_reason})")
        return "\n".join(lines)

    def choices(self) -> str:
        """One line for a run's log: what was picked for this machine, and why."""
        return (f"device: {self.device}, {self.precision} ({self.reason}); "
                f"torch.compile {'on' if self.compile else 'off'} ({self.compile_reason})")


def inspect_devices(requested_device: str = "auto", requested_precision: str = "auto",
                    requested_compile: str | bool = "auto") -> DeviceReport:
    import torch

    report = DeviceReport(
        cuda_available=torch.cuda.is_available(),
        mps_available=bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        cpu_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count() or 1,
    )
    for i in range(torch.cuda.device_count() if report.cuda_available else 0):
        props = torch.cuda.get_device_properties(i)
        report.cuda_devices.append(
            {
                "name": props.name,
                "memory_gb": props.total_memory / 2**30,
                "bf16": torch.cuda.is_bf16_supported(),
                "capability": f"{props.major}.{props.minor}",
            }
        )
    report.device = _pick_device(report, requested_device)
    report.precision, report.reason = _pick_precision(report, requested_precision)
    report.compile, report.compile_reason = _pick_compile(report, requested_compile)
    return report


def _pick_device(report: DeviceReport, requested: str) -> str:
    available = {"cpu": True, "cuda": report.cuda_available, "mps": report.mps_available}
    if requested == "auto":
        return "cuda" if report.cuda_available else "mps" if report.mps_available else "cpu"
    if not available.get(requested, False):
        raise ValueError(f"device {requested!r} was asked for but is not available on this machine")
    return requested


def _pick_precision(report: DeviceReport, requested: str) -> tuple[str, str]:
    if requested != "auto":
        if requested == "fp16" and report.device == "cpu":
            raise ValueError("precision fp16 is not supported for training on CPU; use bf16 or fp32")
        return requested, "as requested"
    if report.device == "cuda":
        if report.cuda_devices and report.cuda_devices[0]["bf16"]:
            return "bf16", "GPU supports bf16: half the memory traffic, no loss scaling"
        return "fp16", "GPU lacks bf16: fp16 with loss scaling"
    # CPU: bf16 autocast pays off only where this very CPU multiplies bf16 matrices clearly faster
    # than fp32, and CPUs with the same flags disagree (bench/RESULTS.md): a 2-core Xeon with
    # AVX512-BF16 but no AMX ran bf16 matmuls at 0.7x fp32 and GPT-2 124M training at 0.63x; a 2-core
    # AMD EPYC with the same flags ran them at 4x and the training at 2.6x. So it is measured.
    # MPS: fp16 training there is still fragile, so fp32.
    if report.device == "cpu" and cpu_has_fast_bf16():
        speedup = cpu_bf16_speedup()
        if speedup >= BF16_MIN_SPEEDUP:
            return "bf16", f"CPU multiplies bf16 matrices {speedup:.1f}x faster than fp32, measured now"
        return "fp32", f"CPU multiplies bf16 matrices at only {speedup:.1f}x fp32, measured now"
    return "fp32", f"{report.device}: fp32 is the fastest reliable choice"


# bf16 autocast also pays for casts and keeps elementwise work in fp32: only a clear matmul win carries over
BF16_MIN_SPEEDUP = 1.5


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a training-shaped matrix product (GPT-2 124M's MLP on 512 tokens) on
    this CPU, best of five each after a first call that lets oneDNN pick its kernel: ~0.2 s, once per
    process. The best of several runs keeps a busy neighbour from deciding it."""
    import time

    import torch

    def best(a, b) -> float:
        torch.mm(a, b)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        return min(times)

    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 768, generator=generator), torch.randn(768, 3072, generator=generator)
    return best(a, b) / best(a.bfloat16(), b.bfloat16())


def _cpu_has_amx() -> bool:
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # a private torch helper: probed defensively
    try:
        return bool(probe and probe())
    except RuntimeError:
        return False


def _pick_compile(report: DeviceReport, requested: str | bool) -> tuple[bool, str]:
    """torch.compile per device class. `requested` is auto/on/off (True/False from older configs).

    The rule, from measurements in bench/RESULTS.md (warm-up included, since a run pays for it):
    - CUDA: on. Fused kernels are where the GPU recipe's speed comes from; the ~1 min warm-up is
      repaid within the first few hundred steps.
    - CPU: off. Compiled steps are 7-20 % faster once warm, but the warm-up (20-40 s for GPT-2 124M
      on 2 cores, longer under load) costs more than a typical CPU fine-tune of a few hundred steps
      saves, and the LM-head selection (a data-dependent shape) splits the graph.
    - MPS: off (inductor's Metal backend is still experimental).
    """
    if requested in (True, "on"):
        return True, "as requested"
    if requested in (False, "off"):
        return False, "as requested"
    if report.device == "cuda":
        return True, "GPU: fused kernels; the ~1 min compile warm-up pays back within a few hundred steps"
    if report.device == "mps":
        return False, "Apple MPS: inductor's Metal backend is experimental"
    return False, "CPU: the compile warm-up costs more than it saves on a run of a few hundred steps"


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere): avx512f, avx512_bf16, amx_tile..."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16() -> bool:
    """bf16 arithmetic in hardware (AVX512-BF16 dot products or AMX tiles), so bf16 weights are not
    converted back to fp32 in software on every read."""
    return _cpu_has_amx() or "avx512_bf16" in cpu_flags()
