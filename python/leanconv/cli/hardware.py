"""What the machine is: CPU name and the measured FMA peak per ISA."""
from __future__ import annotations

import os
import platform

from leanconv import _core


def cpu_name() -> str:
    """The CPU's marketing name where the OS tells it, else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                    value = line.split(":", 1)[1].strip()
                    if value and not value.isdigit():
                        return value
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def loadavg():
    """1-minute load average (None where unknown): other work on the machine
    skews every timing, so reports show it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def fma_peak_gflops(isa: str, seconds: float = 0.2):
    """Single-thread FMA peak of `isa` in GFLOP/s (2 flops per FMA lane), as
    _core measures it with a register-only FMA loop; None where this build
    has no such measurement."""
    measure = getattr(_core, "fma_peak_gflops", None)
    if measure is None:
        return None
    try:
        return float(measure(isa, seconds))
    except (ValueError, RuntimeError, OSError):
        return None
