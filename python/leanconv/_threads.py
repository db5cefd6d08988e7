"""How many threads a call uses.

Order: a call's own `threads=`; else lc.set_num_threads(); else the
LEANCONV_NUM_THREADS environment variable; else the CPUs this process may run
on (CPU affinity and a cgroup CPU quota both count).  The OpenMP runtime's
limit (OMP_NUM_THREADS, threadpoolctl's threadpool_limits) caps the last two:
a count asked for by name is used as it is.

The threads themselves are leanconv's own pool (kernels/threadpool.c) on
POSIX systems, OpenMP elsewhere.  Idle pool workers spin LEANCONV_POOL_SPIN_US
microseconds (default 300, see kernels/threadpool.h) after their last parallel
region, then sleep; the variable is read once, at import.  The pool keeps a
worker off the CPU of the thread that called it (a wake-up otherwise often
leaves both on one CPU, see kernels/threadpool.c); LEANCONV_POOL_SPREAD=0,
read at import too, turns that off (for a process that manages thread
affinity itself).
"""
from __future__ import annotations

import functools
import math
import numbers
import os

import numpy as np

from . import _core

_explicit: int | None = None

SPIN_ENV = "LEANCONV_POOL_SPIN_US"
MAX_SPIN_US = 1_000_000


def spin_us_from(environ) -> int | None:
    """The pool's idle spin asked for in `environ` (None: the default)."""
    text = environ.get(SPIN_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > MAX_SPIN_US:
        raise ValueError(f"{SPIN_ENV} must be an int in 0..{MAX_SPIN_US} (microseconds), got {text!r}")
    return int(text)


SPREAD_ENV = "LEANCONV_POOL_SPREAD"


def spread_from(environ) -> bool | None:
    """Whether LEANCONV_POOL_SPREAD in `environ` asks to keep the pool's
    workers off the caller's CPU (None: the default, on)."""
    text = environ.get(SPREAD_ENV, "").strip()
    if not text:
        return None
    if text not in ("0", "1"):
        raise ValueError(f"{SPREAD_ENV} must be 0 or 1, got {text!r}")
    return text == "1"


def _positive(n, name):
    """A thread count: any integer type (NumPy's too), 1 <= n < 2**31 (a C int)."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(n).__name__} {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    if n >= 1 << 31:
        raise ValueError(f"{name} must be < 2**31, got {n}")
    return n


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, then a cgroup v2/v1 quota."""
    try:
        n = len(os.sched_getaffinity(0))   # (a syscall, under a microsecond: read each time)
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(n, quota)) if quota else max(1, n)


@functools.lru_cache(maxsize=1)
def _cgroup_quota():
    """The container's CPU quota, read once per process: reading the cgroup
    files costs ~0.1 ms, and the quota is the container's, set from outside;
    the settings a program changes (set_num_threads, LEANCONV_NUM_THREADS,
    the OpenMP limit, the affinity mask) are read on every call."""
    return _read_cgroup_quota()


def _read_cgroup_quota():
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            q, period = f.read().split()[:2]
        if q != "max":
            return max(1, math.ceil(int(q) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            q = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if q > 0 and period > 0:
            return max(1, math.ceil(q / period))
    except (OSError, ValueError):
        pass
    return None


def set_num_threads(n: int) -> None:
    """Threads every later call uses (until changed)."""
    global _explicit
    _explicit = _positive(n, "threads")


def get_num_threads() -> int:
    """Threads a call without `threads=` uses now."""
    if not _core.openmp_enabled():
        return 1
    if _explicit is not None:
        return _explicit  # asked for by name: not capped
    env = os.environ.get("LEANCONV_NUM_THREADS", "").strip()
    if env:
        try:
            n = _positive(int(env), "LEANCONV_NUM_THREADS")
        except ValueError:
            raise ValueError(f"LEANCONV_NUM_THREADS must be a positive int, got {env!r}") from None
    else:
        n = available_cpus()
    # The OpenMP runtime's limit (OMP_NUM_THREADS, threadpoolctl) caps the
    # defaults; PyTorch sets it too when it shares the runtime.
    return min(n, max(1, _core.omp_max_threads()))


def resolve(threads) -> int:
    """The thread count of one call."""
    if threads is None:
        return get_num_threads()
    n = _positive(threads, "threads")
    return n if _core.openmp_enabled() else 1


_spin = spin_us_from(os.environ)
if _spin is not None:
    _core.set_pool_spin_us(_spin)
_spread = spread_from(os.environ)
if _spread is not None:
    _core.set_pool_spread(_spread)
