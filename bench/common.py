"""Small helpers shared by the bench modules: percentiles, a timing loop, the machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0–100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Timing:
    """Per-call wall-clock samples (µs) and the mean CPU time per call (µs) of one timed loop."""

    samples_us: tuple[float, ...]
    cpu_us: float

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def p95(self) -> float:
        return percentile(self.samples_us, 95)

    @property
    def n(self) -> int:
        return len(self.samples_us)


def time_calls(
    fn: Callable[[], object], iterations: int, *, budget_s: float, warmup: int = 20, min_samples: int = 50
) -> Timing:
    """Call ``fn`` ``iterations`` times (fewer if ``budget_s`` runs out, but at least ``min_samples``)."""
    min_samples = min(min_samples, iterations)
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    clock = time.perf_counter_ns
    deadline = time.perf_counter() + budget_s
    cpu0 = time.process_time_ns()
    while len(samples) < iterations and (len(samples) < min_samples or time.perf_counter() < deadline):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1000)
    cpu = (time.process_time_ns() - cpu0) / len(samples) / 1000
    return Timing(tuple(samples), cpu)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> str:
    """One line: cores, CPU model, OS / architecture and Python version."""
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"nproc {nproc}, {cpu_model()}, {platform.system()} {platform.machine()}, Python {platform.python_version()}"
