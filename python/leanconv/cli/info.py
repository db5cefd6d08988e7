"""`leanconv info`: what this build and this machine can do."""
from __future__ import annotations

import json
import platform
import sys

import numpy as np

import leanconv as lc
from leanconv import _core

from .hardware import cpu_name, fma_peak_gflops


def gather(peak_seconds=0.2) -> dict:
    status = _core.isa_status()
    available = list(lc.available_isas())
    features = lc.cpu_features()
    return {
        "version": lc.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "build": {
            "openmp": bool(_core.openmp_enabled()),
            "optimisation": _core.build_optimisation(),
            "isas_compiled": [name for name, compiled, _ in status if compiled],
        },
        "cpu": {
            "name": cpu_name(),
            "machine": platform.machine(),
            "features": features,
        },
        "isa": {"available": available, "active": lc.isa()},
        "threads": lc.get_num_threads(),
        "algorithms": list(lc.algorithms()),
        # GFLOP/s of one thread; None where this build cannot measure it
        "fma_peak_gflops": {isa: fma_peak_gflops(isa, peak_seconds) for isa in available},
    }


def _kib(n):
    if not n:
        return "none"
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n >> 10} KiB"


def _peak_text(value):
    return "n/a" if value is None else f"{value:.1f} GFLOP/s per thread"


def format_text(info: dict) -> str:
    feats = info["cpu"]["features"]
    kinds = [k for k in ("x86", "arm64", "arm32") if feats.get(k)]
    flags = [k for k, v in feats.items() if v is True and k not in ("x86", "arm64", "arm32")]
    cache = feats.get("cache") or {}
    build = info["build"]
    lines = [
        f"leanconv {info['version']}  (Python {info['python']}, NumPy {info['numpy']})",
        f"  build        OpenMP {'on' if build['openmp'] else 'off'}; "
        f"-O{build['optimisation'] or '?'}; ISAs compiled: "
        f"{', '.join(build['isas_compiled'])}",
        f"  cpu          {info['cpu']['name']} ({'/'.join(kinds) or info['cpu']['machine']})",
        f"  features     {' '.join(flags) or 'none detected'}",
        f"  caches       L1d {_kib(cache.get('l1d'))}, L2 {_kib(cache.get('l2'))}, "
        f"L3 {_kib(cache.get('l3'))} ({cache.get('source', 'unknown')})",
        f"  isa          available: {', '.join(info['isa']['available'])}; "
        f"active: {info['isa']['active']}",
        f"  threads      {info['threads']}",
        f"  algorithms   {', '.join(info['algorithms'])}",
        "  FMA peak     " + "; ".join(f"{isa}: {_peak_text(v)}"
                                      for isa, v in info["fma_peak_gflops"].items()),
    ]
    return "\n".join(lines)


def run(args) -> int:
    info = gather(args.peak_time)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_text(info))
    return 0
