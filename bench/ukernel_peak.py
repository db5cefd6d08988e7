"""GEMM micro-kernel throughput on cache-resident data, as % of the FMA peak.

    python bench/ukernel_peak.py [--k 256]

Full MR x NR tiles, A (k x MR) and B (k x NR) in L1, C written each call.
The buffers are 64-byte aligned as the drivers' packed panels are: from
NumPy's default (16-byte) alignment every 64-byte load of B straddles two
cache lines, and the AVX-512 8 x 32 tile read 89% of the FMA peak on an
Intel Xeon where it runs at 96% on aligned panels."""
import argparse
import time

import numpy as np

import leanconv as lc
from leanconv import _core
from leanconv._scratch import aligned_empty


def aligned_floats(values):
    out = aligned_empty(4 * values.size).view(np.float32)
    out[:] = values
    return out


def kernel_gflops(isa, k, reps=2000, trials=7):
    mr, nr, _ = _core._ukernel_tile(isa)
    a = aligned_floats(np.random.default_rng(0).standard_normal(k * mr))
    b = aligned_floats(np.random.default_rng(1).standard_normal(k * nr))
    c = aligned_floats(np.zeros(mr * nr))
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
