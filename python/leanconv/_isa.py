"""Which micro-kernel ISA new plans use.

Detection runs once, at import.  LEANCONV_ISA=<name> forces the process
default (an ISA this CPU or build lacks is an error at import that lists what
is available); use_isa() switches it for a block of code in the current thread
(or asyncio task) only: the choice is a contextvars value, so threads never see
each other's blocks and each block restores exactly what was there before.  A
plan reads the ISA when it is made and keeps it, since the packed layout
depends on the ISA's tile size."""
from __future__ import annotations

import contextlib
import contextvars
import os

from . import _core

_NAMES = _core.ISA_NAMES


def available_isas() -> tuple:
    """ISAs this build has and this CPU runs, best last."""
    ok = [name for name, compiled, runs in _core.isa_status() if compiled and runs]
    # order: scalar, then the SIMD ones by preference
    order = ["scalar", "neon", "avx2", "avx512"]
    return tuple(sorted(ok, key=order.index))


def _best() -> str:
    return available_isas()[-1]


def _check(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"ISA name must be a str, got {type(name).__name__}")
    name = name.strip().lower()
    if name not in available_isas():
        known = "" if name in _NAMES else " (unknown name)"
        raise ValueError(f"ISA {name!r} is not available here{known}; available: "
                         f"{', '.join(available_isas())}")
    return name


def _from_env() -> str:
    forced = os.environ.get("LEANCONV_ISA", "").strip()
    if forced:
        try:
            return _check(forced)
        except ValueError as e:
            raise ImportError(f"LEANCONV_ISA={forced!r}: {e}") from None
    return _best()


_default = _from_env()
# The ISA of the current thread/task's innermost use_isa block; None outside
# any block (then the process default applies).
_chosen: contextvars.ContextVar = contextvars.ContextVar("leanconv_isa", default=None)


def isa() -> str:
    """The ISA new plans and conv2d calls made here (this thread or task) use."""
    return _chosen.get() or _default


def isa_id(name=None) -> int:
    return _NAMES.index(name or isa())


@contextlib.contextmanager
def use_isa(name):
    """with lc.use_isa("scalar"): ...  -- plans made and calls run inside the
    block, in this thread, use it; other threads keep their own choice."""
    token = _chosen.set(_check(name))
    try:
        yield _chosen.get()
    finally:
        _chosen.reset(token)


def cpu_features() -> dict:
    return _core.cpu_features()
