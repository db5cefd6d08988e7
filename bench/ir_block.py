"""The fused inverted-residual block (kernels/ir_block.c) against the same
layers run one after the other as leanconv plans, on the expanding 1x1 +
depthwise pairs of MobileNetV2, MobileNetV3-large and EfficientNet-B0 at
224 x 224 and of MobileNetV2 at 448 x 448, and on the blocks without an
expansion (depthwise + projecting 1x1: MobileNetV2's and MnasNet's first),
at 1 and 2 threads.  A script, not a test.

    python bench/ir_block.py              # writes docs/ir_block.md
    python bench/ir_block.py --quick      # fewer samples, prints only

Method: both forms run in this process in interleaved samples (unfused,
fused, unfused, ...) with a few ms of sleep between them; a sample is a loop
of calls lasting >= --sample-ms; the figure is the median sample, spread =
interquartile range / median.  "rule" is what lc_ir_block_pays (with a
projection, lc_ir_block_project_pays) says for the block on this CPU (the
rewrites fuse only where it says yes)."""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
from _source_tree import use_source_tree  # noqa: E402
use_source_tree()
sys.path.insert(0, str(ROOT / "bench"))

import leanconv as lc  # noqa: E402
from doc_section import publish  # noqa: E402
from leanconv import _core  # noqa: E402
from leanconv._ir_block import InvertedResidual  # noqa: E402
from leanconv.cli.hardware import cpu_name  # noqa: E402

RELU6 = ("clamp", 0.0, 6.0)
# (model, layer, C, E, H, stride, k, activation, P): C None -- no expanding
# 1x1, the depthwise reads the input -- with P the projection's outputs
BLOCKS = [
    ("mobilenet_v2 224", "features.2", 16, 96, 112, 2, 3, RELU6, None),
    ("mobilenet_v2 224", "features.3", 24, 144, 56, 1, 3, RELU6, None),
    ("mobilenet_v2 224", "features.4", 24, 144, 56, 2, 3, RELU6, None),
    ("mobilenet_v2 224", "features.5", 32, 192, 28, 1, 3, RELU6, None),
    ("mobilenet_v2 224", "features.8", 64, 384, 14, 1, 3, RELU6, None),
    ("mobilenet_v3_large 224", "features.2", 16, 64, 112, 2, 3, "relu", None),
    ("mobilenet_v3_large 224", "features.4", 24, 72, 56, 2, 5, "relu", None),
    ("mobilenet_v3_large 224", "features.7", 40, 240, 28, 2, 3, "hardswish", None),
    ("efficientnet_b0 224", "features.2.0", 16, 96, 112, 2, 3, "silu", None),
    ("efficientnet_b0 224", "features.3.0", 24, 144, 56, 2, 5, "silu", None),
    ("mobilenet_v2 448", "features.2", 16, 96, 224, 2, 3, RELU6, None),
    ("mobilenet_v2 448", "features.3", 24, 144, 112, 1, 3, RELU6, None),
    ("mobilenet_v2 448", "features.4", 24, 144, 112, 2, 3, RELU6, None),
    ("mobilenet_v2 224", "features.1", None, 32, 112, 1, 3, RELU6, 16),
    ("mnasnet1_0 224", "layers.3", None, 32, 112, 1, 3, "relu", 16),
    ("mobilenet_v2 448", "features.1", None, 32, 224, 1, 3, RELU6, 16),
]


def sample(fn, sample_s):
    """Seconds per call over a loop lasting >= sample_s."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= sample_s:
            return dt / n


def measure(block, threads, samples, sample_s):
    _, _, C, E, H, s, k, act, P = block
    g = np.random.default_rng(0)
    x = g.standard_normal((1, C or E, H, H)).astype(np.float32)
    wd = (g.standard_normal((E, 1, k, k)) / 3).astype(np.float32)
    bd = g.standard_normal(E).astype(np.float32)
    p = k // 2
    dw = lc.Conv2d(wd, bd, stride=s, padding=p, groups=E, activation=act)
    if C is None:   # depthwise + projection (no activation after it, as in MobileNetV2)
        wp = (g.standard_normal((P, E, 1, 1)) / np.sqrt(E)).astype(np.float32)
        bp = g.standard_normal(P).astype(np.float32)
        fused = InvertedResidual(None, None, None, wd, bd, act, s, (p,) * 4, 1,
                                 project=(wp, bp, None))
        layers = [dw, lc.Conv2d(wp, bp)]
    else:
        we = (g.standard_normal((E, C, 1, 1)) / np.sqrt(C)).astype(np.float32)
        be = g.standard_normal(E).astype(np.float32)
        fused = InvertedResidual(we, be, act, wd, bd, act, s, (p,) * 4, 1)
        layers = [lc.Conv2d(we, be, activation=act), dw]
    mids = [x]   # every layer's output, reused by the unfused loop
    for layer in layers:
        mids.append(layer(mids[-1], threads=threads))
    y, mid = mids[-1], mids[1]
    out = np.empty_like(y)
    fused(x, out=out, threads=threads)
    err = float(np.max(np.abs(out - y)) / np.max(np.abs(y)))
    assert err < 1e-5, f"{block[:2]}: fused differs from the layers by {err}"

    def unfused():
        for layer, src, dst in zip(layers, mids, mids[1:]):
            layer(src, out=dst, threads=threads)

    def fuse():
        fused(x, out=out, threads=threads)
    a, b = [], []
    for _ in range(samples):
        a.append(sample(unfused, sample_s))
        time.sleep(0.003)
        b.append(sample(fuse, sample_s))
        time.sleep(0.003)
    info = fused.info(x.shape, threads)
    pays = info["why"] is None and info["project_pays" if C is None else "pays"]
    return a, b, pays, mid.nbytes


def spread(v):
    q = statistics.quantiles(v, n=4)
    return (q[2] - q[0]) / statistics.median(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--sample-ms", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help="5 samples of 5 ms; print only")
    ap.add_argument("--out", default=str(ROOT / "docs" / "ir_block.md"))
    args = ap.parse_args()
    samples, sample_s = (5, 0.005) if args.quick else (args.samples, args.sample_ms / 1000)
    caches = _core.cache_sizes()
    lines = [
        f"Fused expanding 1x1 + depthwise, or depthwise + projecting 1x1 (\"dw ... -> P\": "
        f"no expansion), (kernels/ir_block.c) against the layers unfused, batch 1, "
        f"{lc.isa()}, {cpu_name()} ({platform.machine()}), "
        f"L2 {caches['l2'] >> 10} KiB, L3 {caches['l3'] >> 20} MiB, load before "
        f"{os.getloadavg()[0]:.2f}.  `python bench/ir_block.py`; median of {samples} "
        f"interleaved samples of >= {sample_s * 1000:.0f} ms, spread = IQR / median.",
        "",
        "| model | block | not stored | threads | unfused ms | fused ms | fused speed-up "
        "| spread u/f | rule fuses |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for threads in [int(v) for v in args.threads.split(",")]:
        for block in BLOCKS:
            a, b, pays, nbytes = measure(block, threads, samples, sample_s)
            ma, mb = statistics.median(a), statistics.median(b)
            C, E, H, s, k, _, P = block[2:]
            what = f"dw {E}@{H} {k}x{k}/{s} -> {P}" if C is None else f"{C}->{E}@{H} {k}x{k}/{s}"
            lines.append(
                f"| {block[0]} | {block[1]} {what} | {nbytes / 2**20:.1f} MiB "
                f"| {threads} | {ma * 1e3:.3f} | {mb * 1e3:.3f} | {ma / mb:.2f}x "
                f"| {spread(a):.0%}/{spread(b):.0%} | {'yes' if pays else 'no'} |")
            print(lines[-1], flush=True)
    lines.append("")
    lines.append(f"Load after: {os.getloadavg()[0]:.2f}.")
    if args.quick:
        print("\n".join(lines))
        return
    publish(args.out, "ir-block", lines)


if __name__ == "__main__":
    main()
