"""GEMM micro-kernel throughput on cache-resident data, as % of the FMA peak.

    python bench/ukernel_peak.py [--k 256]

Full MR x NR tiles, A (k x MR) and B (k x NR) in L1, C written each call."""
import argparse
import time

import numpy as np

import leanconv as lc
from leanconv import _core


def kernel_gflops(isa, k, reps=2000, trials=7):
    mr, nr, _ = _core._ukernel_tile(isa)
    a = np.random.default_rng(0).standard_normal(k * mr).astype(np.float32)
    b = np.random.default_rng(1).standard_normal(k * nr).astype(np.float32)
    c = np.zeros(mr * nr, np.float32)
    best = 0.0
    for _ in range(trials):
        t0 = time.perf_counter()
        _core._ukernel_gemm(isa, mr, nr, k, a, b, nr, c, nr, None, _core.GEMM_FINAL, None, reps)
        dt = time.perf_counter() - t0
        best = max(best, 2.0 * mr * nr * k * reps / dt / 1e9)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=0, help="k per call (default: the ISA's kc)")
    args = ap.parse_args()
    for isa in lc.available_isas():
        mr, nr, kc = _core._ukernel_tile(isa)
        k = args.k or kc
        peak = _core.fma_peak_gflops(isa, 0.3)
        g = kernel_gflops(isa, k)
        print(f"{isa:7s} {mr}x{nr} k={k}: {g:7.1f} GFLOP/s of peak {peak:7.1f} = {100 * g / peak:5.1f}%")


if __name__ == "__main__":
    main()
