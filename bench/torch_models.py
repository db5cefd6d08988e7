"""End-to-end latency: stock PyTorch vs the same model after leanconv.torch.convert.

    python bench/torch_models.py                       # ResNet-18, MobileNetV2; 1 and 2 threads
    python bench/torch_models.py --models resnet18 --threads 1 --repeats 30 --size 224

One process, one model pair at a time, the two runs interleaved (stock,
converted, stock, ...) so drifts in clock speed or machine load hit both
alike; the figure is the median of each.  torch.set_num_threads(n) sets the
thread count of both (leanconv.torch follows torch's setting).  The speed-up
printed is stock / converted: above 1 means leanconv is faster.  Re-run after
a kernel change: nothing here is cached between runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import reference_nets  # noqa: E402

import leanconv as lc  # noqa: E402
import leanconv.torch as lct  # noqa: E402


def interleaved_medians(fns, repeats, warmup):
    """Median seconds of each function, run round-robin `repeats` times."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def bench_model(name, threads, size, repeats, warmup, algorithm="auto"):
    torch.set_num_threads(threads)
    stock = reference_nets.make(name)
    converted = lct.convert(stock, algorithm=algorithm)
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        # same answer first: a fast wrong model is no result
        a, b = stock(x), converted(x)
        err = float((a - b).abs().max() / a.abs().max())
        t_stock, t_lc = interleaved_medians([lambda: stock(x), lambda: converted(x)],
                                            repeats, warmup)
    algos = {}
    for m in converted.modules():
        if isinstance(m, lct.Conv2d) and m.plan is not None:
            algos[m.plan.algorithm] = algos.get(m.plan.algorithm, 0) + 1
    return dict(model=name, threads=threads, stock_ms=t_stock * 1e3, leanconv_ms=t_lc * 1e3,
                speedup=t_stock / t_lc, max_rel_diff=err, algorithms=algos)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"],
                   choices=["resnet18", "mobilenet_v2"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--algorithm", default="auto")
    args = p.parse_args(argv)

    load = _loadavg()
    print(f"load average {load:.2f} before the run" if load is not None else "", end="; ")
    print(f"torch {torch.__version__}, leanconv ISA {lc.isa()} "
          f"(available: {', '.join(lc.available_isas())}), batch 1, "
          f"{args.size}x{args.size}, median of {args.repeats} interleaved runs")
    print(f"{'model':<14}{'threads':>8}{'torch ms':>11}{'leanconv ms':>13}{'speed-up':>10}"
          f"{'max rel diff':>14}  algorithms")
    rows = []
    for name in args.models:
        for n in args.threads:
            r = bench_model(name, n, args.size, args.repeats, args.warmup, args.algorithm)
            rows.append(r)
            algos = ", ".join(f"{k} x{v}" for k, v in sorted(r["algorithms"].items()))
            print(f"{r['model']:<14}{r['threads']:>8}{r['stock_ms']:>11.2f}"
                  f"{r['leanconv_ms']:>13.2f}{r['speedup']:>9.2f}x{r['max_rel_diff']:>14.1e}"
                  f"  {algos}", flush=True)
    load = _loadavg()
    if load is not None:
        print(f"load average now {load:.2f} on {os.cpu_count()} CPUs"
              + ("  (busy machine: multi-thread figures are unreliable)"
                 if load > 0.5 and max(args.threads) > 1 else ""))
    return rows


def _loadavg():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


if __name__ == "__main__":
    main()
