"""Whole torchvision models: stock PyTorch vs leanconv.torch.freeze (and onnxruntime).

    python bench/torch_models.py              # every model, 1 and 2 threads, RSS -> docs/torch-models.md
    python bench/torch_models.py --quick      # ResNet-18 and MobileNetV2 only, no file written

Random weights, eval mode, batch 1, 224x224.  For each model and thread
count the engines run interleaved in one process (stock, frozen, [ort],
stock, ...; a few ms of sleep between engines) so drifts in clock speed or
machine load hit all alike; the figure is the median, the spread the
interquartile range over the median.  onnxruntime runs the model exported by
torch.onnx.export, with intra-op threads = the thread count.  Peak RSS is
measured in separate processes (VmHWM): one builds the model and runs it
stock; the other builds it, freezes it and runs the frozen model.  The
per-call overhead row times a chain of 60 tiny 1x1 convolutions, where the
kernels do almost nothing, against the bare kernel calls.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import torchvision_models as tv  # noqa: E402

import leanconv as lc  # noqa: E402
import leanconv.torch as lct  # noqa: E402
from leanconv.torch.frozen.frozen_conv import FrozenConv2d  # noqa: E402

QUICK = ("resnet18", "mobilenet_v2")
ORT_MODELS = ("resnet18", "mobilenet_v2")
SEGMENTATION = "deeplabv3_mobilenet_v3_large"


def interleaved(fns, repeats, warmup, pause=0.003):
    """(median, IQR/median) seconds of each function, run round-robin."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    out = []
    for ts in times:
        q = statistics.quantiles(ts, n=4)
        med = statistics.median(ts)
        out.append((med, (q[2] - q[0]) / med))
    return out


def ort_session(model, x, threads):
    import onnxruntime as ort
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"])
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return lambda: sess.run(None, feed)


def bench_model(name, threads, size, repeats, warmup, algorithm, with_ort):
    x = torch.randn(1, 3, size, size)
    stock = tv.make(name)
    with torch.inference_mode():
        ref = tv.output(stock(x))
    frozen = lct.freeze(tv.make(name), x, algorithm=algorithm)
    with torch.inference_mode():
        y = tv.output(frozen(x))
    err = float((y - ref).abs().max() / ref.abs().max())
    algos = {}
    for m in frozen.modules():
        if isinstance(m, FrozenConv2d):
            algos[m.algorithm] = algos.get(m.algorithm, 0) + 1
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        fns = [lambda: stock(x), lambda: frozen(x)]
        if with_ort and name in ORT_MODELS:
            fns.append(ort_session(stock, x, n))
        with torch.inference_mode():
            res = interleaved(fns, repeats, warmup)
        row = dict(model=name, threads=n, stock=res[0], frozen=res[1],
                   ort=res[2] if len(res) > 2 else None, max_rel_diff=err, algorithms=algos)
        rows.append(row)
        print(_row_text(row), flush=True)
    return rows


def _row_text(r):
    s, f = r["stock"], r["frozen"]
    text = (f"{r['model']:<30}{r['threads']:>3}  torch {s[0] * 1e3:8.2f} ms ±{s[1]:4.0%}  "
            f"frozen {f[0] * 1e3:8.2f} ms ±{f[1]:4.0%}  x{s[0] / f[0]:.2f}")
    if r["ort"] is not None:
        text += f"  onnxruntime {r['ort'][0] * 1e3:.2f} ms ±{r['ort'][1]:.0%}"
    return text


# --- per-call overhead -----------------------------------------------------------------------

def call_overhead(convs=60, repeats=200):
    """Microseconds a frozen conv call costs beyond its kernel, on a 60-conv
    chain of 1x1 convs over an 8x4x4 input (kernels of ~0.1 us of work)."""
    torch.set_num_threads(1)
    chain = torch.nn.Sequential(*[torch.nn.Conv2d(8, 8, 1) for _ in range(convs)]).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        stock_fn = chain.__call__
        frozen = lct.freeze(chain, x)
    kernels = [m for m in frozen.modules() if isinstance(m, FrozenConv2d)]
    xn = x.numpy().reshape(-1)
    yn = torch.empty(1, 8, 4, 4).numpy().reshape(-1)
    calls = [(m._kernel_run, m._bias_np, m._geometry(x.shape)[0]) for m in kernels]

    def bare():
        for run, b, g in calls:
            run(xn, yn, b, g, 1)

    with torch.inference_mode():
        (t_frozen, _), (t_bare, _) = interleaved([lambda: frozen(x), bare], repeats, 10, 0)
    del stock_fn
    return dict(convs=convs, frozen_us=t_frozen / convs * 1e6, kernel_us=t_bare / convs * 1e6,
                overhead_us=(t_frozen - t_bare) / convs * 1e6)


# --- peak RSS in separate processes ------------------------------------------------------------

def conv_weight_bytes(model):
    """Bytes of torch's conv weights: the memory_budget under which the frozen
    model's packed weights take no more room than the ones freeze releases."""
    return sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def rss_child(name, mode, size, algorithm):
    torch.set_num_threads(1)
    x = torch.randn(1, 3, size, size)
    model = tv.make(name)
    if mode == "frozen":
        model = lct.freeze(model, x, algorithm=algorithm)
    elif mode == "frozen-budget":
        model = lct.freeze(model, x, algorithm=algorithm,
                           memory_budget=conv_weight_bytes(model))
    with torch.inference_mode():
        for _ in range(3):
            model(x)
    print(json.dumps(dict(rss_mb=_peak_rss_mb())))


def _peak_rss_mb():
    """This process's peak RSS.  VmHWM, not ru_maxrss: Linux carries the
    parent's high-water mark across fork+exec into ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RSS_MODES = ("stock", "frozen", "frozen-budget")


def peak_rss(name, size, algorithm):
    out = {}
    for mode in RSS_MODES:
        cmd = [sys.executable, __file__, "--rss-child", name, mode, str(size), "--algorithm",
               algorithm]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT / "python")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        out[mode] = json.loads(res.stdout.strip().splitlines()[-1])["rss_mb"]
    print(f"{name:<30} {size}x{size}  peak RSS stock {out['stock']:.0f} MB, "
          f"frozen {out['frozen']:.0f} MB, frozen under memory_budget "
          f"{out['frozen-budget']:.0f} MB", flush=True)
    return out


# --- the report ---------------------------------------------------------------------------------

def _ms(t):
    return f"{t[0] * 1e3:.1f} ±{t[1]:.0%}"


def markdown(rows, overhead, rss, args, load_before, load_after):
    threads = sorted({r["threads"] for r in rows})
    lines = [
        "# Whole PyTorch models: stock torch vs `leanconv.torch.freeze`",
        "",
        "Regenerate: `python bench/torch_models.py` (writes this file; a few minutes).",
        "",
        f"torch {torch.__version__}, leanconv ISA {lc.isa()} "
        f"({os.cpu_count()} CPUs: {_cpu_name()}), torchvision models with random weights, eval, "
        f"batch 1, {args.size}x{args.size}, `freeze(algorithm={args.algorithm!r})`. "
        f"Median of {args.repeats} interleaved runs ± interquartile range / median. "
        f"Load average {load_before:.2f} before, {load_after:.2f} after "
        "(other processes on the machine slow both sides, the multi-thread figures most).",
        "",
        "| model | " + " | ".join(f"torch {n}T ms | frozen {n}T ms | speed-up {n}T"
                                    for n in threads) + " | max rel diff | algorithms |",
        "|---|" + "---:|---:|---:|" * len(threads) + "---:|---|",
    ]
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["threads"]] = r
    speedups = {n: [] for n in threads}
    for name, per in by_model.items():
        cells = []
        for n in threads:
            r = per[n]
            sp = r["stock"][0] / r["frozen"][0]
            speedups[n].append(sp)
            cells += [_ms(r["stock"]), _ms(r["frozen"]), f"{sp:.2f}x"]
        any_r = next(iter(per.values()))
        algos = ", ".join(f"{k} {v}" for k, v in sorted(any_r["algorithms"].items()))
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {any_r['max_rel_diff']:.1e} | {algos} |")
    geo = " | ".join(f" | | **{math.exp(statistics.fmean(map(math.log, speedups[n]))):.2f}x**"
                     for n in threads)
    lines.append(f"| **geomean** | {geo} | | |")
    ort_rows = [r for r in rows if r["ort"] is not None]
    if ort_rows:
        lines += ["", "onnxruntime (model exported by `torch.onnx.export`, intra-op threads = "
                  "threads), timed in the same interleaved rounds:", "",
                  "| model | threads | torch ms | frozen ms | onnxruntime ms | frozen vs ort |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in ort_rows:
            lines.append(f"| {r['model']} | {r['threads']} | {_ms(r['stock'])} | "
                         f"{_ms(r['frozen'])} | {_ms(r['ort'])} | "
                         f"{r['ort'][0] / r['frozen'][0]:.2f}x |")
    if rss:
        lines += ["", "Peak RSS (VmHWM of a separate process, 1 thread): one builds the model "
                  "and runs it stock 3 times; the others build it, freeze it (as timed above, "
                  "and with `memory_budget=` the bytes of torch's conv weights, so the packed "
                  "weights take no more room than the ones freeze releases) and run the frozen "
                  "model 3 times. Winograd's packed weights are alpha^2/9 = 1.8-7.1x the raw "
                  "ones: that, not a second copy, is what the unbudgeted column adds.", "",
                  "| model | input | stock MB | frozen MB | frozen, budget MB | "
                  "frozen / stock | budget / stock |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for (name, size), v in rss.items():
            lines.append(f"| {name} | {size}x{size} | {v['stock']:.0f} | {v['frozen']:.0f} | "
                         f"{v['frozen-budget']:.0f} | {v['frozen'] / v['stock']:.2f} | "
                         f"{v['frozen-budget'] / v['stock']:.2f} |")
    if overhead:
        o = overhead
        lines += ["", f"Per-call overhead (1 thread): a chain of {o['convs']} 1x1 convolutions "
                  f"on a 1x8x4x4 input takes {o['frozen_us']:.1f} us per conv frozen, "
                  f"{o['kernel_us']:.1f} us per bare kernel call: **{o['overhead_us']:.1f} us per "
                  f"conv** of Python, allocation and dispatch, i.e. "
                  f"{o['overhead_us'] * 60 / 1e3:.2f} ms on a 60-conv model."]
    return "\n".join(lines) + "\n"


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _loadavg():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=tv.ARCHITECTURES)
    p.add_argument("--quick", action="store_true",
                   help="ResNet-18 and MobileNetV2 only; print, do not write the docs table")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--algorithm", default="auto")
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--no-ort", action="store_true")
    p.add_argument("--out", default=str(ROOT / "docs" / "torch-models.md"))
    p.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_child:
        name, mode, size = args.rss_child
        return rss_child(name, mode, int(size), args.algorithm)

    models = args.models or (QUICK if args.quick else tv.ARCHITECTURES)
    load_before = _loadavg()
    print(f"load average {load_before:.2f}; torch {torch.__version__}, leanconv ISA {lc.isa()}")
    rows = []
    for name in models:
        rows += bench_model(name, args.threads, args.size, args.repeats, args.warmup,
                            args.algorithm, not args.no_ort)
    overhead = call_overhead()
    print(f"per-call overhead {overhead['overhead_us']:.1f} us per conv "
          f"(frozen {overhead['frozen_us']:.1f}, bare kernel {overhead['kernel_us']:.1f})")
    rss = {}
    if not args.no_rss:
        for name in models:
            rss[(name, args.size)] = peak_rss(name, args.size, args.algorithm)
        if SEGMENTATION in models:
            rss[(SEGMENTATION, 512)] = peak_rss(SEGMENTATION, 512, args.algorithm)
    load_after = _loadavg()
    print(f"load average now {load_after:.2f}")
    if not args.quick and not args.models:
        text = markdown(rows, overhead, rss, args, load_before, load_after)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
