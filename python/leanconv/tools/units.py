"""Quantities on the command line: sizes, link rates and times.

  size   plain bytes (`1048576`) or a number with a unit: B, kB/KB, MB, GB, TB
         (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)             -> bytes
  rate   bits or bytes per second: bit/s, kbit/s, Mbit/s, Gbit/s (also bps, kbps,
         Mbps, Gbps, Mb/s, Gb/s) and B/s, kB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s
                                                                        -> bytes/s
  time   a number with a unit: us (or µs), ms, s, min                   -> seconds

Units are case-sensitive where case carries meaning (Mb is bits, MB bytes).
A negative or non-finite number, an unknown unit or a missing one is a
ValueError that says what was expected."""
from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")

SIZE_UNITS = {"": 1, "B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
              "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_BIT_PREFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
RATE_UNITS = {}
for _p, _f in _BIT_PREFIX.items():
    for _suffix in ("bit/s", "bps", "b/s"):
        RATE_UNITS[_p + _suffix] = _f / 8
for _u, _f in SIZE_UNITS.items():
    if _u:
        RATE_UNITS[_u + "/s"] = _f
TIME_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}


_SHOWN = {id(SIZE_UNITS): "B, kB, MB, GB, KiB, MiB, GiB",
          id(RATE_UNITS): "bit/s, kbit/s, Mbit/s, Gbit/s (or bps, kbps, Mbps, Gbps), "
                          "B/s, kB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s",
          id(TIME_UNITS): "us, ms, s, min"}


def _parse(text, units, what, example, allow_plain):
    m = _NUMBER.match(str(text))
    if not m:
        raise ValueError(f"{what} {text!r} is not a number with a unit (e.g. {example})")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "" and not allow_plain:
        raise ValueError(f"{what} {text!r} has no unit (e.g. {example}; units: "
                         f"{_SHOWN[id(units)]})")
    if unit not in units:
        raise ValueError(f"{what} {text!r}: unknown unit {unit!r}; use one of "
                         f"{_SHOWN[id(units)]}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} {text!r} must be a finite number >= 0")
    return value * units[unit]


def parse_size(text, what="size"):
    """'64MiB' -> 67108864 (int bytes)."""
    return int(round(_parse(text, SIZE_UNITS, what, "64MiB or 67108864", True)))


def parse_rate(text, what="rate"):
    """'10Mbit/s' -> 1250000.0 bytes per second; must be > 0."""
    rate = _parse(text, RATE_UNITS, what, "10Mbit/s or 5MB/s", False)
    if rate <= 0:
        raise ValueError(f"{what} {text!r} must be > 0")
    return rate


def parse_time(text, what="time"):
    """'40ms' -> 0.04 seconds."""
    return _parse(text, TIME_UNITS, what, "40ms", False)


def format_bytes(n):
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_rate(bytes_per_s):
    bits = bytes_per_s * 8
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= size:
            return f"{bits / size:g} {unit}"
    return f"{bits:g} bit/s"
