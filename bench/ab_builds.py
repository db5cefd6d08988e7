"""Is this tree slower than another revision?  Interleaved A/B timing of the
same convolutions on two builds of leanconv in one process.

    python bench/ab_builds.py --rev c13677e [--algorithms winograd_f4,winograd_f6] [--threads 1]

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


def time_pair(calls, repeats, sleep_s=0.003):
    """Alternate the calls; per call the median and IQR of its times (ms)."""
    times = [[] for _ in calls]
    for f in calls:          # warm up: pages, caches, thread pool
        f()
    for _ in range(repeats):
        for i, f in enumerate(calls):
            t0 = time.perf_counter()
            f()
            times[i].append((time.perf_counter() - t0) * 1e3)
            time.sleep(sleep_s)
    return [quartiles(t) for t in times]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the other revision (A); this tree is B")
    ap.add_argument("--algorithms", default="winograd_f2,winograd_f4,winograd_f6")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=41)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        a = load(build_revision(args.rev, pathlib.Path(tmp)), "leanconv_a")
        b = load(HERE / "python", "leanconv_b")
        rng = np.random.default_rng(0)
        print(f"load average {os.getloadavg()[0]:.2f}; isa {b.isa()}; threads {args.threads}; "
              f"A = {args.rev}, B = this tree; median ms (IQR), {args.repeats} interleaved calls each\n")
        print("| layer | algorithm | A ms | B ms | B/A |\n|---|---|---|---|---|")
        for name, C, M, H in LAYERS:
            x = rng.standard_normal((1, C, H, H)).astype(np.float32)
            w = rng.standard_normal((M, C, 3, 3)).astype(np.float32)
            y = np.empty((1, M, H, H), np.float32)
            for algo in args.algorithms.split(","):
                plans = [lib.Conv2d(w, padding=1, algorithm=algo, threads=args.threads)
                         for lib in (a, b)]
                (ma, qa), (mb, qb) = time_pair(
                    [lambda p=p, x=x, y=y: p(x, out=y) for p in plans], args.repeats)
                print(f"| {name} | {algo} | {ma:.3f} ({qa:.3f}) | {mb:.3f} ({qb:.3f}) | "
                      f"{mb / ma:.3f} |")


if __name__ == "__main__":
    main()
