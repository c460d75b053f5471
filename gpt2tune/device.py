"""Which hardware is there, and the best device and precision to train on it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


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
    bf16_speedup: dict | None = None  # Bf16Speedup.to_dict() where the CPU's ratio decided the precision

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
                    requested_compile: str | bool = "auto", shape: ProbeShape | None = None) -> DeviceReport:
    """shape: the run's matrix products (ProbeShape.of_run), which a CPU's bf16 probe times."""
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
    report.precision, report.reason = _pick_precision(report, requested_precision, shape)
    report.compile, report.compile_reason = _pick_compile(report, requested_compile)
    return report


def check_device_available(requested: str) -> None:
    """The device asked for, refused at once (one line) when this machine lacks it: before the data is read."""
    if requested in ("auto", "cpu"):
        return
    import torch

    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    _pick_device(DeviceReport(cuda_available=torch.cuda.is_available(), mps_available=mps), requested)


def _pick_device(report: DeviceReport, requested: str) -> str:
    available = {"cpu": True, "cuda": report.cuda_available, "mps": report.mps_available}
    if requested == "auto":
        return "cuda" if report.cuda_available else "mps" if report.mps_available else "cpu"
    if not available.get(requested, False):
        raise ValueError(f"device {requested!r} was asked for but is not available on this machine")
    return requested


def _pick_precision(report: DeviceReport, requested: str, shape: ProbeShape | None = None) -> tuple[str, str]:
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
    # AMD EPYC with the same flags ran them at 4x and the training at 2.6x. So it is measured, at the
    # run's own shapes, and kept per CPU model (cpu_bf16_speedup).
    # MPS: fp16 training there is still fragile, so fp32.
    if report.device == "cpu" and cpu_has_fast_bf16():
        measured = cpu_bf16_speedup(shape or ProbeShape())
        report.bf16_speedup = measured.to_dict()
        speedup, source = measured.ratio, measured.source()
        if speedup >= BF16_MIN_SPEEDUP:
            return "bf16", f"CPU multiplies bf16 matrices {speedup:.1f}x faster than fp32 ({source})"
        return "fp32", f"CPU multiplies bf16 matrices at only {speedup:.1f}x fp32 ({source})"
    return "fp32", f"{report.device}: fp32 is the fastest reliable choice"


# bf16 autocast also pays for casts and keeps elementwise work in fp32: only a clear matmul win carries over
BF16_MIN_SPEEDUP = 1.5


@dataclass(frozen=True)
class ProbeShape:
    """The matrix products one training step of this model makes: `tokens` rows (batch x row
    length) through the MLP's hidden -> 4*hidden weight. The defaults are GPT-2 124M on 512 tokens."""

    tokens: int = 512
    hidden: int = 768

    @classmethod
    def of_run(cls, hidden: int, batch_size: int, max_length: int) -> "ProbeShape":
        # Past a few hundred rows a product's speed per row hardly changes: the rows are capped so that
        # one reading stays near 0.2 s on 2 cores (GPT-2 124M: 512 rows) and several fit the budget.
        cap = max(64, PROBE_MAX_ELEMENTS // max(hidden, 1))
        return cls(tokens=max(8, min(batch_size * max_length, cap)), hidden=hidden)

    def key(self) -> str:
        return f"{self.tokens}x{self.hidden}"


PROBE_MAX_ELEMENTS = 512 * 768  # rows x hidden of one probe product
PROBE_SECONDS = 1.0  # the probe's time budget (it stops sooner once its readings agree)
PROBE_MIN_READINGS, PROBE_MAX_READINGS = 5, 15  # five agreeing within 10 % are steady
PROBE_CACHE_ENV = "GPT2TUNE_CACHE_DIR"  # where the measured ratio is kept (tests point it elsewhere)
BF16_SPEEDUP_ENV = "GPT2TUNE_BF16_SPEEDUP"  # a known ratio instead of a measured one (tests pin it)


@dataclass
class Bf16Speedup:
    """fp32 time / bf16 time of one training step's matrix products on this CPU: the median of several
    interleaved readings, measured now or read back from the cache for this CPU model."""

    ratio: float
    readings: list[float] = field(default_factory=list)
    shape: str = ""
    cached: bool = False
    given_by: str = "given"  # where a ratio that was not measured came from
    steady: bool = False  # the last readings agreed within 10 %: worth keeping for later runs

    def source(self) -> str:
        if not self.readings:
            return self.given_by
        where = "cached for this CPU" if self.cached else "measured now"
        return f"median of {len(self.readings)} readings at {self.shape}, {where}"

    def to_dict(self) -> dict:
        return {"ratio": round(self.ratio, 3), "readings": [round(r, 3) for r in self.readings], "shape": self.shape,
                "cached": self.cached, "source": self.source()}


def time_products(shape: ProbeShape):
    """A timer for the probe: each call times the three products of a training step's MLP (forward,
    input gradient, weight gradient) once in fp32 and once in bf16, and returns (fp32 s, bf16 s).
    The first call of each lets oneDNN pick its kernels and is not counted."""
    import time

    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape.tokens, shape.hidden, generator=generator)
    w = torch.randn(shape.hidden, 4 * shape.hidden, generator=generator)
    g = torch.randn(shape.tokens, 4 * shape.hidden, generator=generator)
    operands = {torch.float32: (x, w, g), torch.bfloat16: (x.bfloat16(), w.bfloat16(), g.bfloat16())}

    def step(dtype) -> float:
        a, b, grad = operands[dtype]
        start = time.perf_counter()
        torch.mm(a, b), torch.mm(grad, b.t()), torch.mm(a.t(), grad)
        return time.perf_counter() - start

    step(torch.float32), step(torch.bfloat16)
    return lambda: (step(torch.float32), step(torch.bfloat16))


def measure_bf16_speedup(shape: ProbeShape = ProbeShape(), timer=None, budget_s: float = PROBE_SECONDS,
                         clock=None) -> Bf16Speedup:
    """Readings of fp32 time / bf16 time, fp32 and bf16 back to back in each (a neighbour's burst of
    load hits both), until the last PROBE_MIN_READINGS agree within 10 % (steady), or the time budget
    is spent with at least that many taken; the median decides, so one reading taken during a burst
    does not (a 0.2 s best-of-five read 2.3x to 26x on one machine within an hour; a median of three
    under a load of 15 on 2 cores flipped once in ten)."""
    import statistics
    import time

    clock = clock or time.perf_counter
    started = clock()
    timer = timer or time_products(shape)
    readings: list[float] = []
    while len(readings) < PROBE_MAX_READINGS:
        fp32_s, bf16_s = timer()
        readings.append(fp32_s / max(bf16_s, 1e-9))
        recent = sorted(readings[-PROBE_MIN_READINGS:])
        steady = len(recent) == PROBE_MIN_READINGS and recent[-1] - recent[0] <= 0.1 * statistics.median(recent)
        if steady or (len(readings) >= PROBE_MIN_READINGS and clock() - started >= budget_s):
            break
    return Bf16Speedup(statistics.median(readings), readings, shape.key(), steady=steady)


def cpu_bf16_speedup(shape: ProbeShape = ProbeShape(), measure=measure_bf16_speedup) -> Bf16Speedup:
    """The ratio for this CPU model, torch version, thread count and shape: read from the cache
    (a small JSON in the user's cache folder), or measured once and kept there, so every run on this
    machine decides the same way. Only a steady measurement is kept: one taken under a burst of load
    decides this run alone, and the next run measures again. GPT2TUNE_BF16_SPEEDUP, when set, is the ratio (nothing measured)."""
    given = os.environ.get(BF16_SPEEDUP_ENV)
    if given:
        try:
            return Bf16Speedup(float(given), shape=shape.key(), given_by=f"set by {BF16_SPEEDUP_ENV}")
        except ValueError:
            raise ValueError(f"{BF16_SPEEDUP_ENV} must be a number, e.g. 1.0 (got {given!r})") from None
    key = "|".join((cpu_model_name(), _torch_version(), f"{_threads()} threads", shape.key()))
    path = probe_cache_file()
    cache = _read_json(path)
    entry = cache.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("ratio"), (int, float)):
        return Bf16Speedup(float(entry["ratio"]), list(entry.get("readings") or []), shape.key(), cached=True)
    result = measure(shape)
    if result.steady:
        cache[key] = result.to_dict()
        _write_json(path, cache)
    return result


def probe_cache_file() -> Path:
    """GPT2TUNE_CACHE_DIR, else $XDG_CACHE_HOME/gpt2tune, else ~/.cache/gpt2tune."""
    root = os.environ.get(PROBE_CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gpt2tune"
    return Path(root) / "bf16-probe.json"


def cpu_model_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_version() -> str:
    import torch

    return f"torch {torch.__version__}"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _read_json(path: Path) -> dict:
    try:
        values = json.loads(path.read_text())
        return values if isinstance(values, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, values: dict) -> None:
    """Best effort: a read-only home only means the next run measures again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, path)
    except OSError:
        pass


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
