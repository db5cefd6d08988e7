"""How near the machine's two CPUs are right now, for every table's header.

On the 2-vCPU KVM guests this project is measured on, the host sometimes
places the two vCPUs on different core complexes for a minute or more.  Then
a cache line moves between them in ~400 ns instead of ~80, and every engine's
2-thread time grows (MobileNetV2 224: leanconv 1.75 -> 2.75 ms, onnxruntime
2.05 -> 2.85 ms in one such minute, 2026-12-01), while 1-thread times do not
move.  A table written in such a minute is not comparable with one written
outside it, so each says what this probe read when its benchmark started and
when it ended.

The probe is leanconv's own two-thread region whose two items wait for each
other (`_core.region_probe`): its median is about two cache-line trips
between the CPUs (0.25-0.31 us near, about 1 us far)."""
from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

NEAR_US = 0.6   # above this, the two CPUs were far apart (or busy) during the probe


def cross_cpu_region_us(rounds=2000):
    """Median microseconds of one back-to-back two-thread region, or None on a
    build or machine without a second thread."""
    from leanconv import _core
    times = _core.region_probe("pool", 0.0, rounds) if _core.parallel_backend() == "pool" \
        else None
    return None if not times else statistics.median(times) * 1e6


def probe_in_child():
    """cross_cpu_region_us() read in a fresh process, so the caller's own
    threads and settings (a pool started, environment read at import) stay
    as the benchmark makes them; None when it cannot run."""
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve())], capture_output=True,
                             text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
        return float(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def describe(start_us, end_us):
    """One sentence for a table's header: the probe at start and end."""
    if start_us is None or end_us is None:
        return "Host probe: no two-thread pool in this build."
    far = max(start_us, end_us) > NEAR_US
    return (f"Host probe (bench/host_state.py, a two-thread region's median): {start_us:.2f} us "
            f"at the start, {end_us:.2f} us at the end"
            + (f" -- above {NEAR_US} us: the two CPUs were far apart or busy, 2-thread figures of "
               "every engine are slower than usual." if far else
               " (near: the two CPUs share a cache)."))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    us = cross_cpu_region_us()
    if us is None:
        sys.exit(1)
    print(f"{us:.4f}")
