"""Whole torchvision models: stock PyTorch vs leanconv.torch.freeze (and onnxruntime).

    python bench/torch_models.py              # every model, 1 and 2 threads, RSS -> docs/torch-models.md
    python bench/torch_models.py --quick      # ResNet-18 and MobileNetV2 (1, 2 threads, RSS), no file

Random weights, eval mode, batch 1, 224x224.  Engines: stock torch, the
frozen model (freeze's default: packed weights within torch's weight bytes),
the frozen model without a memory budget, and (ResNet-18, MobileNetV2)
onnxruntime and leanconv.onnx on the model exported by torch.onnx.export,
with intra-op threads = the thread count.  Each engine lives in its own worker process; the rounds
are interleaved across the processes (one turn per engine per round: a pause,
a wait until the other engines are idle, one untimed and three timed runs)
so drifts in clock speed or machine load hit all alike and no engine runs
beside another's spinning thread pool.  The figure is the
median, the spread the interquartile range over the median.  Peak RSS is
measured in separate processes (VmHWM): one builds the model and runs it
stock; the others build it, freeze it and run the frozen model.  The
per-call overhead row times a chain of 60 tiny 1x1 convolutions, where the
kernels do almost nothing, against the same kernels called bound in one C
loop (the least a call can cost), and the frozen model's fx code (each layer
a Python call, as when a shape is seen the first time).
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
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from _source_tree import child_env, use_source_tree  # noqa: E402
use_source_tree(1)
import _rotation  # noqa: E402
from doc_section import host_line  # noqa: E402
import torchvision_models as tv  # noqa: E402

import leanconv as lc  # noqa: E402
import leanconv.torch as lct  # noqa: E402
from leanconv.torch.frozen.frozen_conv import FrozenConv2d  # noqa: E402
from leanconv.cli.hardware import cpu_name  # noqa: E402

QUICK = ("resnet18", "mobilenet_v2")
ORT_MODELS = ("resnet18", "mobilenet_v2")
PER_TURN = 3          # timed runs per turn, back to back after one untimed run
TURN_MAX_S = 0.05     # ... fewer (at least one) once a turn's timed runs take this long
SEGMENTATION = "deeplabv3_mobilenet_v3_large"


ENGINES = ("stock", "frozen", "frozen-fast", "ort", "lc-onnx")
PEERS = ("ort", "lc-onnx")          # run on ORT_MODELS only
ENGINE_TEXT = {"stock": "torch", "frozen": "frozen", "frozen-fast": "frozen, no budget",
               "ort": "onnxruntime", "lc-onnx": "leanconv.onnx"}


# --- one engine per process ----------------------------------------------------------------
#
# Each engine (stock torch, frozen, frozen without a memory budget, onnxruntime) lives in its
# own worker process, so each process has one thread pool: three pools in one process (torch's
# OpenMP, leanconv's OpenMP, onnxruntime's) spun against each other and gave 2-thread spreads
# of +-50-94%.  The parent runs the rounds interleaved across the workers, one turn of each
# engine per round, with a pause between engines in which the idle workers' pools stop
# spinning and block (libgomp spins for at most GOMP_SPINCOUNT iterations, well under a
# millisecond at its default; onnxruntime's pool likewise), so drifts in clock speed or machine
# load hit every engine alike and no engine runs beside another's spinning threads.

def _build(name, engine, size, algorithm):
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    model = tv.make(name)
    if engine == "stock":
        return model, x, lambda n: (lambda: model(x))
    if engine in PEERS:
        sessions = {}
        make = ort_session if engine == "ort" else lc_onnx_session

        def session(n):
            if n not in sessions:
                sessions[n] = make(model, x, n)
            return sessions[n]
        return model, x, session
    budget = sys.maxsize if engine == "frozen-fast" else None
    frozen = lct.freeze(model, x, algorithm=algorithm, memory_budget=budget)
    return frozen, x, lambda n: (lambda: frozen(x))


def worker(name, engine, size, algorithm):
    """Serve one engine: commands on stdin, one JSON answer per line on stdout.
    fn_for(threads) is a call of the engine with no arguments."""
    model, x, fn_for = _build(name, engine, size, algorithm)
    out = sys.stdout
    sys.stdout = sys.stderr         # stray prints (warnings, exporters) stay off the channel
    out.write("ready\n")
    out.flush()
    with torch.inference_mode():
        for line in sys.stdin:
            cmd, *arg = line.split()
            if cmd == "run":        # run THREADS WARMUP TIMED -> the timed calls' seconds
                n, warm, timed = int(arg[0]), int(arg[1]), int(arg[2])
                torch.set_num_threads(n)
                reply = _rotation.timed_runs(fn_for(n), timed, warm, max_s=TURN_MAX_S)
            elif cmd == "output":               # output PATH -> the model's output saved there
                torch.set_num_threads(1)
                y = fn_for(1)()
                y = torch.from_numpy(y[0]) if engine in PEERS else tv.output(y)
                torch.save(y, arg[0])
                reply = arg[0]
            elif cmd == "info":
                algos = {}
                for m in model.modules():
                    if isinstance(m, FrozenConv2d):
                        algos[m.algorithm] = algos.get(m.algorithm, 0) + 1
                reply = algos
            else:
                break
            out.write(json.dumps(reply) + "\n")
            out.flush()


class Worker:
    def __init__(self, name, engine, size, algorithm):
        self.engine = engine
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, engine, str(size), "--algorithm",
             algorithm], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(),
            stderr=subprocess.DEVNULL)

    def wait_ready(self):
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the {self.engine} worker did not start")

    def ask(self, *cmd):
        self.proc.stdin.write(" ".join(map(str, cmd)) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _spread(ts):
    med, iqr_pct = _rotation.spread(ts)
    return med, iqr_pct / 100


def interleaved(workers, threads, rounds, warmup, pause, min_time):
    """{engine: (median s, IQR/median)} over the timed runs of bench/_rotation.py's
    rotation (each turn: `pause` s of sleep, a wait until the other workers use
    no CPU, one untimed run, then PER_TURN timed runs back to back, fewer for a
    model slower than TURN_MAX_S), until every engine has `rounds` turns and
    `min_time` s of timed runs."""
    for w in workers:
        w.ask("run", threads, warmup, 0)

    def ask(w):
        time.sleep(pause)
        return w.ask("run", threads, 1, PER_TURN)
    times, _ = _rotation.rotate({w.engine: (lambda w=w: ask(w)) for w in workers},
                                {w.engine: w.proc.pid for w in workers}, min_time, rounds)
    return {e: _spread(ts) for e, ts in times.items()}


def _exported(model, x):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"])
    return buf.getvalue()


def lc_onnx_session(model, x, threads):
    import onnx

    import leanconv.onnx as lco
    rep = lco.prepare(onnx.load_from_string(_exported(model, x)), threads=threads)
    feed = [x.numpy()]
    return lambda: rep.run(feed)


def ort_session(model, x, threads):
    import onnxruntime as ort
    buf = io.BytesIO(_exported(model, x))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return lambda: sess.run(None, feed)


def _rel_diff(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def bench_model(name, threads, size, repeats, warmup, algorithm, engines, pause, min_time):
    workers = [Worker(name, e, size, algorithm) for e in engines]
    try:
        for w in workers:
            w.wait_ready()
        by = {w.engine: w for w in workers}
        with tempfile.TemporaryDirectory() as tmp:
            outs = {e: torch.load(by[e].ask("output", os.path.join(tmp, f"{e}.pt")))
                    for e in by}
        errs = {e: _rel_diff(outs[e], outs["stock"]) for e in by if e != "stock"}
        algos = by["frozen"].ask("info")
        fast_algos = by["frozen-fast"].ask("info") if "frozen-fast" in by else None
        rows = []
        for n in threads:
            res = interleaved(workers, n, repeats, warmup, pause, min_time)
            row = dict(model=name, threads=n, times=res, diffs=errs, algorithms=algos,
                       fast_algorithms=fast_algos)
            rows.append(row)
            print(_row_text(row), flush=True)
        return rows
    finally:
        for w in workers:
            w.close()


def _row_text(r):
    t = r["times"]
    parts = [f"{r['model']:<30}{r['threads']:>3}"]
    for e in ENGINES:
        if e in t:
            parts.append(f"{ENGINE_TEXT[e]} {t[e][0] * 1e3:8.2f} ms ±{t[e][1]:4.0%}")
    parts.append(f"x{t['stock'][0] / t['frozen'][0]:.2f}")
    return "  ".join(parts)


# --- per-call overhead -----------------------------------------------------------------------

def _median_in_process(fns, repeats, warmup):
    """Median seconds of each function, run round-robin in this process."""
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


def call_overhead(convs=60, repeats=200):
    """Microseconds a frozen model's call costs beyond its kernels, on a
    chain of 1x1 convs over an 8x4x4 input (kernels of ~0.1 us of work):
    against the same kernels bound to fixed buffers and run in one C loop,
    the least those calls can cost; and the fx code's cost (a Python call
    per layer), which a frozen model runs for a shape it sees the first time."""
    from leanconv import _core, _scratch
    torch.set_num_threads(1)
    chain = torch.nn.Sequential(*[torch.nn.Conv2d(8, 8, 1) for _ in range(convs)]).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        frozen = lct.freeze(chain, x)
    kernels = [m for m in frozen.modules() if isinstance(m, FrozenConv2d)]
    a, b = x.numpy().copy(), x.numpy().copy()
    bound = tuple(m.plan.bind(*((a, b) if i % 2 == 0 else (b, a)), threads=1)
                  for i, m in enumerate(kernels))
    ws = _scratch.lend(max(c.workspace_bytes for c in bound) or 1)
    fx_code = type(frozen).forward

    with torch.inference_mode():
        t_frozen, t_bare, t_fx = _median_in_process(
            [lambda: frozen(x), lambda: _core.run_bound(bound, ws),
             lambda: fx_code(frozen, x)], repeats, 10)
    return dict(convs=convs, frozen_us=t_frozen * 1e6, kernels_us=t_bare * 1e6,
                fx_us=t_fx * 1e6, overhead_us=(t_frozen - t_bare) * 1e6,
                fx_per_conv_us=(t_fx - t_bare) / convs * 1e6)


# --- peak RSS in separate processes ------------------------------------------------------------

RSS_MODES = ("stock", "frozen", "frozen-fast")


def rss_child(name, mode, size, algorithm):
    torch.set_num_threads(1)
    x = torch.randn(1, 3, size, size)
    model = tv.make(name)
    if mode != "stock":
        model = lct.freeze(model, x, algorithm=algorithm,
                           memory_budget=sys.maxsize if mode == "frozen-fast" else None)
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


def peak_rss(name, size, algorithm):
    out = {}
    for mode in RSS_MODES:
        cmd = [sys.executable, __file__, "--rss-child", name, mode, str(size), "--algorithm",
               algorithm]
        res = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), check=True)
        out[mode] = json.loads(res.stdout.strip().splitlines()[-1])["rss_mb"]
    print(f"{name:<30} {size}x{size}  peak RSS stock {out['stock']:.0f} MB, "
          f"frozen {out['frozen']:.0f} MB, frozen without a budget "
          f"{out['frozen-fast']:.0f} MB", flush=True)
    return out


# --- the report ---------------------------------------------------------------------------------

def _ms(t):
    return f"{t[0] * 1e3:.1f} ±{t[1]:.0%}"


def _geomean(xs):
    return math.exp(statistics.fmean(map(math.log, xs)))


def markdown(rows, overhead, rss, args, load_before, load_after):
    threads = sorted({r["threads"] for r in rows})
    fast = any("frozen-fast" in r["times"] for r in rows)
    lines = [
        "# Whole PyTorch models: stock torch vs `leanconv.torch.freeze`",
        "",
        "Regenerate: `python bench/torch_models.py` (writes this file; about 10 minutes on a "
        "quiet 2-CPU machine; `--quick` covers ResNet-18 and MobileNetV2 in about 2 and writes "
        "nothing).",
        "",
        f"torch {torch.__version__}, leanconv ISA {lc.isa()} "
        f"({os.cpu_count()} CPUs: {cpu_name()}), torchvision models with random weights, eval, "
        f"batch 1, {args.size}x{args.size}, `freeze(model, x, algorithm={args.algorithm!r})`: "
        "its default holds the packed weights and the one workspace its layers share within "
        "torch's conv weight bytes plus the largest layer's, spent on Winograd where it saves "
        "the most time per byte; "
        "*no budget* is `memory_budget=sys.maxsize` (every layer its fastest packing, Winograd "
        "at alpha^2/9 = 1.8-7.1x the raw weights). A frozen model runs as one schedule over a "
        "static activation arena, compiled at freeze for the example input's shape "
        "(leanconv.onnx's executor); inside its call torch's own ops run on one thread and "
        "leanconv's kernels on torch's setting. Channels-last islands (ConvNeXt's blocks: "
        "permute, LayerNorm, Linear, GELU, Linear, permute back, layer scale) run in NCHW, "
        "their Linears as 1x1 convolutions with the layer scale and residual add fused. "
        "**Method:** each engine runs in its own worker process (one thread pool per process); "
        f"the rounds are interleaved across the processes, one turn of each engine per round "
        f"({args.pause * 1e3:.0f} ms of sleep, then {_rotation.METHOD}; here 1 untimed and 1 "
        f"timed run per turn). Median of {args.repeats} rounds ± interquartile "
        f"range / median. Load average {load_before:.2f} before, {load_after:.2f} after "
        "(other processes on the machine slow every engine, the 2-thread figures most).",
        "",
        "| model | " + " | ".join(
            f"torch {n}T ms | frozen {n}T ms | speed-up {n}T"
            + (f" | no budget {n}T ms | speed-up {n}T" if fast else "") for n in threads)
        + " | max rel diff | algorithms (default) | algorithms (no budget) |",
        "|---|" + ("---:|" * (5 if fast else 3)) * len(threads) + "---:|---|---|",
    ]
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["threads"]] = r
    speedups = {(n, e): [] for n in threads for e in ("frozen", "frozen-fast")}
    for name, per in by_model.items():
        cells = []
        for n in threads:
            t = per[n]["times"]
            sp = t["stock"][0] / t["frozen"][0]
            speedups[(n, "frozen")].append(sp)
            cells += [_ms(t["stock"]), _ms(t["frozen"]), f"{sp:.2f}x"]
            if fast:
                spf = t["stock"][0] / t["frozen-fast"][0]
                speedups[(n, "frozen-fast")].append(spf)
                cells += [_ms(t["frozen-fast"]), f"{spf:.2f}x"]
        r = next(iter(per.values()))

        def algo_text(a):
            return ", ".join(f"{k} {v}" for k, v in sorted(a.items())) if a else ""
        diff = max(r["diffs"][e] for e in r["diffs"] if e.startswith("frozen"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {diff:.1e} | "
                     f"{algo_text(r['algorithms'])} | {algo_text(r['fast_algorithms'])} |")
    geo = []
    for n in threads:
        geo += ["", "", f"**{_geomean(speedups[(n, 'frozen')]):.2f}x**"]
        if fast:
            geo += ["", f"**{_geomean(speedups[(n, 'frozen-fast')]):.2f}x**"]
    lines.append("| **geomean** | " + " | ".join(geo) + " | | | |")
    ort_rows = [r for r in rows if "ort" in r["times"]]
    if ort_rows:
        lines += ["", "onnxruntime and leanconv.onnx (model exported by `torch.onnx.export`, "
                  "intra-op threads = threads), timed in the same interleaved rounds, each in "
                  "its own process; *x* = the peer's time over the frozen model's:", "",
                  "| model | threads | torch ms | frozen ms | no budget ms | onnxruntime ms | "
                  "leanconv.onnx ms | frozen vs ort | no budget vs ort | frozen vs "
                  "leanconv.onnx |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in ort_rows:
            t = r["times"]
            f, lco = t.get("frozen-fast"), t.get("lc-onnx")

            def vs(peer, ours):
                return f"{peer[0] / ours[0]:.2f}x" if peer and ours else ""
            lines.append(f"| {r['model']} | {r['threads']} | {_ms(t['stock'])} | "
                         f"{_ms(t['frozen'])} | {_ms(f) if f else ''} | {_ms(t['ort'])} | "
                         f"{_ms(lco) if lco else ''} | {vs(t['ort'], t['frozen'])} | "
                         f"{vs(t['ort'], f)} | {vs(lco, t['frozen'])} |")
    if rss:
        lines += ["", "Peak RSS (VmHWM of a separate process, 1 thread): one builds the model "
                  "and runs it stock 3 times; the others build it, freeze it (default, and "
                  "without a budget) and run the frozen model 3 times.", "",
                  "| model | input | stock MB | frozen MB | no budget MB | "
                  "frozen / stock | no budget / stock |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for (name, size), v in rss.items():
            lines.append(f"| {name} | {size}x{size} | {v['stock']:.0f} | {v['frozen']:.0f} | "
                         f"{v['frozen-fast']:.0f} | {v['frozen'] / v['stock']:.2f} | "
                         f"{v['frozen-fast'] / v['stock']:.2f} |")
    if overhead:
        o = overhead
        lines += ["", f"Per-call overhead (1 thread): a frozen chain of {o['convs']} 1x1 "
                  f"convolutions on a 1x8x4x4 input takes {o['frozen_us']:.1f} us a call, its "
                  f"kernels bound and run in one C loop {o['kernels_us']:.1f} us: "
                  f"**{o['overhead_us']:.1f} us a call** beyond the kernels (checks, copying the "
                  f"input in and the output out, threads), "
                  f"{o['overhead_us'] / o['convs']:.2f} us per conv. The frozen model's fx code "
                  f"(a Python call per layer; what a shape seen the first time runs) takes "
                  f"{o['fx_us']:.0f} us: {o['fx_per_conv_us']:.1f} us per conv."]
    return "\n".join(lines) + "\n"


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
    p.add_argument("--repeats", type=int, default=12, help="least turns per engine")
    p.add_argument("--min-time", type=float, default=0.3,
                   help="least seconds of timed runs per engine and thread count")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.02,
                   help="seconds of sleep between engines (idle pools stop spinning)")
    p.add_argument("--algorithm", default="auto")
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--no-ort", action="store_true")
    p.add_argument("--no-fast", action="store_true",
                   help="leave out the frozen model without a memory budget")
    p.add_argument("--out", default=str(ROOT / "docs" / "torch-models.md"))
    p.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_child:
        name, mode, size = args.rss_child
        return rss_child(name, mode, int(size), args.algorithm)
    if args.worker:
        name, engine, size = args.worker
        return worker(name, engine, int(size), args.algorithm)

    models = args.models or (QUICK if args.quick else tv.ARCHITECTURES)
    load_before = _loadavg()
    print(f"load average {load_before:.2f}; torch {torch.__version__}, leanconv ISA {lc.isa()}")
    rows = []
    for name in models:
        engines = [e for e in ENGINES
                   if not (e in PEERS and (args.no_ort or name not in ORT_MODELS))
                   and not (e == "frozen-fast" and args.no_fast)]
        rows += bench_model(name, args.threads, args.size, args.repeats, args.warmup,
                            args.algorithm, engines, args.pause, args.min_time)
    overhead = call_overhead()
    print(f"per-call overhead {overhead['overhead_us']:.1f} us a call "
          f"(frozen {overhead['frozen_us']:.1f}, bound kernels {overhead['kernels_us']:.1f}, "
          f"fx code {overhead['fx_us']:.1f})")
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
        Path(args.out).write_text(text.rstrip("\n") + "\n\n" + host_line() + "\n")
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
