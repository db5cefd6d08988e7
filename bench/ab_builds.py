"""Is this tree slower than another revision?  Interleaved A/B timing of the
same convolutions on two builds of leanconv in one process.

    python bench/ab_builds.py --rev c13677e [--algorithms winograd_f4,winograd_f6] [--threads 1]
    python bench/ab_builds.py --rev main --layers kinds [--algorithms im2col,patch2vec]
    python bench/ab_builds.py --rev main --layers mobile --activation silu
    python bench/ab_builds.py --rev main --layers pointwise --threads 2
    python bench/ab_builds.py --rev main --layers mbv2 --threads 2 --burst 20

Builds revision REV (git archive into a temporary directory, `setup.py
build_ext --inplace`, ~15 s) and imports it beside the build of this tree
(python/ must hold a built extension) under another package name.  Per layer:
the same packed weights and input, calls alternating A, B, A, B ... with a few
ms of sleep between, medians and the interquartile range of each, and B/A.
Prints a Markdown table; the machine's load average is printed with it, since
timings taken while other work runs are unreliable."""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parents[1]

# (name, C, M, H=W): ResNet-like 3x3/stride-1 layers, and thin ones where the
# transforms weigh most against the GEMMs
LAYERS = [("16@112", 16, 16, 112), ("32@56", 32, 32, 56), ("64@56", 64, 64, 56),
          ("128@28", 128, 128, 28), ("256@14", 256, 256, 14), ("512@7", 512, 512, 7)]
# --layers kinds: (name, C, M, H=W, k, stride, pad, groups), the other layer
# kinds of bench/perf_layers.py (stem, stride 2, 1x1, depthwise)
KINDS = [("stem 7x7/2 3>64@224", 3, 64, 224, 7, 2, 3, 1),
         ("3x3/2 64>128@56", 64, 128, 56, 3, 2, 1, 1),
         ("3x3/2 128>256@28", 128, 256, 28, 3, 2, 1, 1),
         ("MobileNet stem 3x3/2 3>32@224", 3, 32, 224, 3, 2, 1, 1),
         ("1x1 256>64@56", 256, 64, 56, 1, 1, 0, 1),
         ("1x1 512>128@28", 512, 128, 28, 1, 1, 0, 1),
         ("1x1 1024>256@14", 1024, 256, 14, 1, 1, 0, 1),
         ("1x1 2048>512@7", 2048, 512, 7, 1, 1, 0, 1),
         ("dw 7x7 96@56", 96, 96, 56, 7, 1, 3, 96),
         ("dw 7x7 384@14", 384, 384, 14, 7, 1, 3, 384),
         ("dw 5x5 480@14", 480, 480, 14, 5, 1, 2, 480)]
# --layers mobile: depthwise layers of MobileNetV2/V3 and EfficientNet-B0 (128 and 224 px
# inputs), small planes and many channels
MOBILE = [("dw 3x3 1152@4", 1152, 1152, 4, 3, 1, 1, 1152),
          ("dw 5x5 1152@4", 1152, 1152, 4, 5, 1, 2, 1152),
          ("dw 3x3 960@7", 960, 960, 7, 3, 1, 1, 960),
          ("dw 5x5 672@8", 672, 672, 8, 5, 1, 2, 672),
          ("dw 3x3 480@8", 480, 480, 8, 3, 1, 1, 480),
          ("dw 3x3 384@14", 384, 384, 14, 3, 1, 1, 384),
          ("dw 3x3/2 240@16", 240, 240, 16, 3, 2, 1, 240),
          ("dw 5x5/2 672@8", 672, 672, 8, 5, 2, 2, 672),
          ("dw 3x3 144@32", 144, 144, 32, 3, 1, 1, 144),
          ("dw 3x3/2 96@64", 96, 96, 64, 3, 2, 1, 96),
          ("dw 3x3 32@64", 32, 32, 64, 3, 1, 1, 32)]
# --layers mbv2: MobileNetV2's depthwise layers at 224 px (bench/onnx_profile.py's steps)
MBV2 = [(f"dw 3x3{'/2' if s == 2 else ''} {C}@{H}", C, C, H, 3, s, 1, C) for C, H, s in (
    (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2), (384, 14, 1),
    (576, 14, 1), (576, 14, 2), (960, 7, 1))] + [
    # and its projecting 1x1s on the larger images (features.1-6; features.2-3's run fused
    # in the model, kernels/ir_block.c, through the same GEMM panel loop)
    (f"1x1 {C}>{M}@{H}", C, M, H, 1, 1, 0, 1) for C, M, H in (
        (32, 16, 112), (144, 24, 56), (144, 32, 28), (192, 32, 28))]

# --layers pointwise: the 1x1 convolutions of MobileNetV2 (expand, then project) and of
# ResNet-50's bottlenecks
POINTWISE = [(f"1x1 {C}>{M}@{H}", C, M, H, 1, 1, 0, 1) for C, M, H in (
    (16, 96, 112), (24, 144, 56), (32, 192, 28), (64, 384, 14), (96, 576, 14), (160, 960, 7),
    (144, 24, 56), (192, 32, 28), (384, 64, 14), (576, 96, 14), (960, 160, 7), (320, 1280, 7),
    (64, 256, 56), (256, 64, 56), (512, 128, 28), (1024, 256, 14), (2048, 512, 7))]

# --layers grouped: ResNeXt-50's grouped 3x3 (32 groups of 4 channels) and regnet_y_400mf's
# (group width 8, stride 1 and the stride-2 first block of each stage; input sizes)
GROUPED = [("grouped 3x3 128@56 g32", 128, 128, 56, 3, 1, 1, 32),
           ("grouped 3x3 256@28 g32", 256, 256, 28, 3, 1, 1, 32)] + [
    (f"grouped 3x3{'/2' if s == 2 else ''} {C}@{H} g{C // 8}", C, C, H, 3, s, 1, C // 8)
    for C, H, s in ((48, 56, 1), (104, 28, 1), (208, 14, 1), (440, 7, 1),
                    (48, 112, 2), (104, 56, 2), (208, 28, 2), (440, 14, 2))]


def load(package_dir: pathlib.Path, name: str):
    """Import python/leanconv of a build as package `name`."""
    spec = importlib.util.spec_from_file_location(
        name, package_dir / "leanconv" / "__init__.py",
        submodule_search_locations=[str(package_dir / "leanconv")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_revision(rev: str, into: pathlib.Path) -> pathlib.Path:
    subprocess.run(f"git -C {HERE} archive {rev} | tar -x -C {into}", shell=True, check=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=into,
                   check=True, capture_output=True)
    return into / "python"


def quartiles(ts):
    q1, q2, q3 = np.percentile(ts, [25, 50, 75])
    return q2, q3 - q1


def time_pair(calls, repeats, sleep_s=0.003, burst=0, clock=time.perf_counter):
    """Alternate the calls; per call the median and IQR of its times (ms).
    burst > 0: each sample is the mean of `burst` back-to-back calls after an
    untimed one, as a layer runs inside a model (the pool's workers still
    awake from the call before); 0: single calls, each after the sleep (at 2+
    threads that includes waking the workers).  `clock`: wall time, or the
    calling thread's CPU time (1 thread on a loaded machine: the time other
    processes hold the core is left out)."""
    times = [[] for _ in calls]
    for f in calls:          # warm up: pages, caches, thread pool
        f()
    for _ in range(repeats):
        for i, f in enumerate(calls):
            if burst:
                f()
            t0 = clock()
            for _ in range(max(burst, 1)):
                f()
            times[i].append((clock() - t0) * 1e3 / max(burst, 1))
            time.sleep(sleep_s)
    return [quartiles(t) for t in times]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the other revision (A); this tree is B")
    ap.add_argument("--layers", choices=("3x3", "kinds", "mobile", "mbv2", "pointwise", "grouped"),
                    default="3x3",
                    help="3x3 stride-1 layers, the other kinds (KINDS), MobileNet-class "
                         "depthwise layers (MOBILE, MBV2), 1x1 layers (POINTWISE) or grouped "
                         "layers (GROUPED)")
    ap.add_argument("--activation", default=None, help="fused activation (e.g. silu)")
    ap.add_argument("--algorithms", default=None,
                    help="default: winograd_f2,f4,f6 for 3x3, auto for kinds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=41)
    ap.add_argument("--burst", type=int, default=0,
                    help="time bursts of this many back-to-back calls (workers awake, as in a "
                         "model) instead of single calls after a sleep")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time the calling thread's CPU time, not wall time (1 thread only: "
                         "steadier on a loaded machine)")
    args = ap.parse_args(argv)
    if args.cpu_time and args.threads != 1:
        ap.error("--cpu-time needs --threads 1 (the workers' time is not the caller's)")
    clock = time.thread_time if args.cpu_time else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        a = load(build_revision(args.rev, pathlib.Path(tmp)), "leanconv_a")
        b = load(HERE / "python", "leanconv_b")
        rng = np.random.default_rng(0)
        print(f"load average {os.getloadavg()[0]:.2f}; isa {b.isa()}; threads {args.threads}; "
              f"A = {args.rev}, B = this tree; median ms (IQR), {args.repeats} interleaved "
              f"{f'bursts of {args.burst} calls' if args.burst else 'calls'} each"
              f"{', thread CPU time' if args.cpu_time else ''}\n")
        print("| layer | algorithm | A ms | B ms | B/A |\n|---|---|---|---|---|")
        layers = ([(name, C, M, H, 3, 1, 1, 1) for name, C, M, H in LAYERS]
                  if args.layers == "3x3" else
                  {"kinds": KINDS, "mobile": MOBILE, "mbv2": MBV2, "pointwise": POINTWISE,
                   "grouped": GROUPED}[args.layers])
        algorithms = args.algorithms or ("winograd_f2,winograd_f4,winograd_f6"
                                         if args.layers == "3x3" else "auto")
        for name, C, M, H, k, stride, pad, groups in layers:
            x = rng.standard_normal((1, C, H, H)).astype(np.float32)
            w = rng.standard_normal((M, C // groups, k, k)).astype(np.float32)
            for algo in algorithms.split(","):
                plans = [lib.Conv2d(w, stride=stride, padding=pad, groups=groups, algorithm=algo,
                                    threads=args.threads, activation=args.activation)
                         for lib in (a, b)]
                y = plans[0](x)
                plans[1](x)  # auto decides on first sight
                if algo == "auto":
                    algo = f"auto: {plans[0].algorithm} / {plans[1].algorithm}"
                (ma, qa), (mb, qb) = time_pair(
                    [lambda p=p, x=x, y=y: p(x, out=y) for p in plans], args.repeats, burst=args.burst,
                    clock=clock)
                print(f"| {name} | {algo} | {ma:.3f} ({qa:.3f}) | {mb:.3f} ({qb:.3f}) | "
                      f"{mb / ma:.3f} |")


if __name__ == "__main__":
    main()
