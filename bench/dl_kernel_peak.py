"""The direct_lanes kernel alone on the pixel blocks of a layer's segment, as %
of the ISA's FMA peak: what share of a layer's gap to the peak is the kernel's
and what is its driver's (the padded copy, the transpose, the misses a layer
meets).  A script, not a test.

    python bench/dl_kernel_peak.py                 # every SIMD ISA here
    python bench/dl_kernel_peak.py --isa avx2 --half

Per layer shape: a padded input and packed weights of its size, the pixel
blocks lc_dl_segment cuts its first segment into (near-equal, at most R
pixels), each block's call repeated (`_core._ukernel_dl`'s repeat: no Python
between calls, weights from L1 or L2 as their size allows), no transpose, no
epilogue.  Thread CPU time, median and quartiles of the rounds.  Peak: the
register-only FMA loop of `leanconv info`, the best of 5.  AMD EPYC Zen 4, 1 thread, load
~5-9: AVX-512 6 x 64 ran 3x3/2 64>128@56's blocks at 89-95%, 128>256@28's at
93-96%, the 7x7/2 stem's at 92%, where the layers run at 75-80% of the peak
(the rest is the driver's); 12 x 32 at 83-90%; AVX2 6 x 16 at 74-82%."""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from _source_tree import use_source_tree  # noqa: E402  (same folder)
use_source_tree()

import leanconv  # noqa: E402
from leanconv import _core  # noqa: E402
from leanconv.cli.hardware import fma_peak_gflops  # noqa: E402

SEGMENT = 256  # kernels/direct_lanes.c's LC_DL_SEGMENT
# (name, C, k, OH, OW, stride): the first segment of each layer's one band
SHAPES = [("3x3/2 64>128@56", 64, 3, 28, 28, 2), ("3x3/2 128>256@28", 128, 3, 14, 14, 2),
          ("stem 7x7/2 3>64@224", 3, 7, 112, 112, 2), ("3x3/2 8 ch (all in L1)", 8, 3, 14, 14, 2)]


def gmacs(isa, half, C, k, OH, OW, stride, rounds, seconds):
    """Multiply-adds per second (1e9) of the kernel over the segment's blocks:
    median, first and third quartile of `rounds` rounds."""
    L, CW, R = _core._ukernel_dl_shape(isa, half)
    wp, rows = (OW - 1) * stride + k, (OH - 1) * stride + k
    rng = np.random.default_rng(0)
    x = rng.standard_normal(C * rows * wp).astype(np.float32)
    w = rng.standard_normal(C * k * k * CW).astype(np.float32)
    seg = min(OH * OW, SEGMENT)
    t = np.zeros(CW * seg, np.float32)
    xoff = [p // OW * stride * wp + p % OW * stride for p in range(seg)]
    nblk = -(-seg // R)
    blocks = [(b * seg // nblk, (b + 1) * seg // nblk - b * seg // nblk) for b in range(nblk)]
    macs = seg * C * k * k * CW
    repeat = max(1, int(seconds * 5e10 / macs))  # ~`seconds` a round at 50 GMAC/s

    def one_round():
        t0 = time.thread_time()
        for p0, n in blocks:
            _core._ukernel_dl(isa, n, x, 0, w, t, p0 * L, seg * L, None, C, k, k, rows * wp, wp, 1,
                              xoff[p0:p0 + n], 0, repeat=repeat, half=half)
        return macs * repeat / (time.thread_time() - t0) / 1e9

    one_round()  # warm-up
    got = sorted(one_round() for _ in range(rounds))
    return statistics.median(got), got[len(got) // 4], got[3 * len(got) // 4]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", default=None, help="one ISA (default: every SIMD ISA here)")
    ap.add_argument("--half", action="store_true", help="the half-width kernel too")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--seconds", type=float, default=0.05, help="per round")
    args = ap.parse_args(argv)
    isas = [args.isa] if args.isa else [i for i in leanconv.available_isas() if i != "scalar"]
    print(f"load average {os.getloadavg()[0]:.2f}; 1 thread; median (quartiles) of "
          f"{args.rounds} rounds\n")
    print("| ISA | kernel | layer's blocks | GMAC/s | % of FMA peak |\n|---|---|---|---|---|")
    for isa in isas:
        # the best of a few: a measurement the scheduler cut into reads low
        peak = max((fma_peak_gflops(isa, 0.2) or 0.0 for _ in range(5)), default=0.0)
        for half in (False, True) if args.half else (False,):
            if _core._ukernel_dl_shape(isa, half) is None:
                continue
            L, CW, R = _core._ukernel_dl_shape(isa, half)
            for name, *shape in SHAPES:
                med, q1, q3 = gmacs(isa, half, *shape, args.rounds, args.seconds)
                pct = "" if not peak else (f"{200 * med / peak:.1f} "
                                           f"({200 * q1 / peak:.1f}-{200 * q3 / peak:.1f})")
                print(f"| {isa} | {R} x {CW} | {name} | {med:.1f} | {pct} |")


if __name__ == "__main__":
    main()
