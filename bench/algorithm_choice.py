"""Does leanconv choose the right algorithm?  Per layer, at 1 and 2 threads:
every algorithm that supports the layer as a plan (the naive `direct`
reference excluded: it is the correctness baseline, never a contender), and
the three ways of not naming one:

  auto       lc.Conv2d(w, ..., input_shape=x.shape)  (the C cost model)
  shapeless  lc.Conv2d(w, ...) deciding on its first call
  measure    lc.Conv2d(w, ..., algorithm="measure")  (times the candidates once,
             in a wisdom file of this run's own; its measuring is not timed)

    python bench/algorithm_choice.py                   # its section of docs/performance.md
    python bench/algorithm_choice.py --quick --layers 512@7 stem
    python bench/algorithm_choice.py --json raw.json   # also every time, for fitting

Method: at 1 thread the CPU time of the calling thread (which runs every
call, so time the machine's other tenants take does not count), at 2 threads
wall time.  Every plan of a layer is timed in the same process, on the same
input, the same 64-byte aligned output and the same lent workspace (with an
output buffer each, where that buffer lay made up to 7% between two plans of
one algorithm), in interleaved rounds, each round in a fresh random order
with a few ms of sleep between plans; each sample is a loop of calls lasting
>= --sample-ms.  A plan's figure is its median sample, the spread the
(max - min) / median of the fastest algorithm's samples, and a choice's
ratio the median over rounds of its sample over the fastest algorithm's
sample of the same round (so a drift of the machine's speed cancels).
auto, shapeless and measure are timed as the plans they are, not looked up
from the named algorithm's time; the "same algorithm" control divides each
by the named plan of the algorithm it picked -- the same computation on the
same buffers -- so its distance from 1.00 is the benchmark's noise floor.
The table says the load average at the start.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
# measure's wisdom must start empty and must not touch the user's
_WISDOM_DIR = tempfile.mkdtemp(prefix="leanconv-choice-")
os.environ["LEANCONV_WISDOM"] = os.path.join(_WISDOM_DIR, "wisdom.json")
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

import leanconv as lc  # noqa: E402
import perf_layers  # noqa: E402
from doc_section import host_line, write_section  # noqa: E402
from leanconv._scratch import aligned_empty  # noqa: E402

# name, group, C, H, W, M, k, stride, pad, groups: kinds real models use that
# bench/perf_layers.py does not have
EXTRA_LAYERS = [
    ("cifar 3x3 16@32", "3x3s1", 16, 32, 32, 16, 3, 1, 1, 1),
    ("resnext 3x3 128@56 g32", "grouped", 128, 56, 56, 128, 3, 1, 1, 32),
    ("mbv2 stem 3x3/2 3->32@224", "strided", 3, 224, 224, 32, 3, 2, 1, 1),
    ("r18.down 3x3/2 128->256@28", "strided", 128, 28, 28, 256, 3, 2, 1, 1),
    # ResNet's downsampling 3x3/2 on 128 x 128 images (ResNet-18: 64>128,
    # 128>256, 256>512; ResNet-50's bottlenecks: M>M): outputs of 16 x 16,
    # 8 x 8 and 4 x 4 pixels, whole or half GEMM panels
    ("r18@128 3x3/2 64->128@32", "strided", 64, 32, 32, 128, 3, 2, 1, 1),
    ("r50@128 3x3/2 128->128@32", "strided", 128, 32, 32, 128, 3, 2, 1, 1),
    ("r18@128 3x3/2 128->256@16", "strided", 128, 16, 16, 256, 3, 2, 1, 1),
    ("r50@128 3x3/2 256->256@16", "strided", 256, 16, 16, 256, 3, 2, 1, 1),
    ("r18@128 3x3/2 256->512@8", "strided", 256, 8, 8, 512, 3, 2, 1, 1),
    ("r50@128 3x3/2 512->512@8", "strided", 512, 8, 8, 512, 3, 2, 1, 1),
    ("effnet dw 5x5 240@28", "depthwise", 240, 28, 28, 240, 5, 1, 2, 240),
    ("convnext dw 7x7 96@56", "depthwise", 96, 56, 56, 96, 7, 1, 3, 96),
    ("r50 1x1 512->2048@7", "1x1", 512, 7, 7, 2048, 1, 1, 0, 1),
]


def _as_row(entry):
    """A bench/perf_layers.py entry as (name, group, C, H, W, M, k, stride, pad,
    groups): it holds either such tuples or (group, cli.suites.Layer) pairs."""
    if len(entry) == 10:
        return tuple(entry)
    group, L = entry
    if L.kH != L.kW or L.dilation != 1 or L.H != L.W:
        return None
    return (L.name, group, L.C, L.H, L.W, L.M, L.kH, L.stride, L.pad, L.groups)


def _layers():
    rows, seen = [], set()
    for row in [_as_row(e) for e in perf_layers.LAYERS] + EXTRA_LAYERS:
        if row is None or row[2:] in seen:
            continue
        seen.add(row[2:])
        rows.append(row)
    return rows


LAYERS = _layers()
CHOICES = ("auto", "shapeless", "measure")


def sample(fn, inner, clock):
    t0 = clock()
    for _ in range(inner):
        fn()
    return (clock() - t0) / inner


def quartiles(v):
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], q[2]


def bench_layer(L, threads, rounds, sample_ms):
    name, _, C, H, W, M, k, s, p, g = L
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((M, C // g, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    kw = dict(stride=s, padding=p, groups=g)
    algos = [a for a in lc.algorithms() if a != "direct" and lc.supports(a, x.shape, w.shape, **kw)]
    plans = {a: lc.Conv2d(w, b, algorithm=a, threads=threads, **kw) for a in algos}
    # auto and shapeless decide before measure has written any wisdom
    plans["auto"] = lc.Conv2d(w, b, input_shape=x.shape, threads=threads, **kw)
    plans["shapeless"] = lc.Conv2d(w, b, threads=threads, **kw)
    plans["shapeless"](x)
    t0 = time.perf_counter()
    plans["measure"] = lc.Conv2d(w, b, algorithm="measure", threads=threads, **kw)
    plans["measure"](x)
    measure_s = time.perf_counter() - t0
    # Every plan writes the same output and borrows the same workspace: with
    # an output of its own each, where that buffer happened to lie (its
    # offset in a cache line, its physical pages) made up to 7% of
    # difference between two plans of the same algorithm (depthwise 32@112);
    # 64-byte aligned, as a lent workspace must be.
    shape = plans["auto"].output_shape(x.shape)
    y = aligned_empty(4 * math.prod(shape)).view(np.float32).reshape(shape)
    ws_bytes = max(plans[n].workspace_bytes(x.shape) for n in plans)
    ws = aligned_empty(ws_bytes) if ws_bytes else None
    fns = {n: (lambda p=plans[n]: p(x, out=y, workspace=ws)) for n in plans}
    # one thread: CPU time of this thread, which runs every call (time spent
    # descheduled on the shared machine does not count); else wall time
    clock = time.thread_time if threads == 1 else time.perf_counter
    inner = {}
    for n, fn in fns.items():
        fn()
        t = sample(fn, 1, clock)
        inner[n] = max(1, int(math.ceil(sample_ms / 1e3 / max(t, 1e-7))))
    samples = {n: [] for n in fns}
    order = list(fns)
    for _ in range(rounds):
        rng.shuffle(order)  # no plan always follows the same one
        for n in order:
            samples[n].append(sample(fns[n], inner[n], clock))
            time.sleep(0.003)
    med = {n: statistics.median(v) for n, v in samples.items()}
    fastest = min(algos, key=lambda a: med[a])
    spread = (max(samples[fastest]) - min(samples[fastest])) / med[fastest]

    def ratios(a, b):  # per round, so a drift of the machine's speed cancels
        return [ta / tb for ta, tb in zip(samples[a], samples[b])]

    picked = {c: plans[c].algorithm for c in CHOICES}
    ratio = {c: ratios(c, fastest) for c in CHOICES}
    # the control: a choice against the named plan of the algorithm it picked,
    # the very same computation, so what it reads away from 1.00 is noise
    same = {c: statistics.median(ratios(c, picked[c])) for c in CHOICES}
    return {
        "layer": name, "shape": list(L[2:]), "threads": threads, "algorithms": algos,
        "ms": {n: med[n] * 1e3 for n in med}, "fastest": fastest, "spread": spread,
        "picked": picked,
        "ratio": {c: statistics.median(v) for c, v in ratio.items()},
        "ratio_iqr": {c: quartiles(v) for c, v in ratio.items()},
        "same": same,
        "measure_s": measure_s,
    }


def cpu_text():
    from leanconv.cli.hardware import cpu_name
    c = lc.cpu_features()["cache"]
    return (f"{cpu_name()} ({platform.machine()}), L1d {c['l1d'] >> 10} KiB, "
            f"L2 {c['l2'] >> 10} KiB, L3 {c['l3'] >> 20} MiB ({c['source']})")


TARGET = {"auto": 1.15, "shapeless": 1.15, "measure": 1.05}


def worst_same(r):
    """The control furthest from 1.00 among a layer's three choices."""
    return max((r["same"][c] for c in CHOICES), key=lambda v: abs(v - 1))


def markdown(rows, meta):
    out = ["## Algorithm choice", "",
           "Does `auto` (the C cost model, `kernels/choose.c`), a plan made without "
           "`input_shape` (deciding on its first call) and `algorithm=\"measure\"` (timing "
           "the candidates once, kept in the wisdom file) pick the fastest algorithm? "
           "Each ratio is the median, over interleaved rounds, of that plan's time over the "
           "fastest algorithm's in the same round, timed side by side in one process "
           "(method: the docstring of `bench/algorithm_choice.py`).", "",
           f"- Regenerate: `{meta['command']}`",
           f"- CPU: {meta['cpu']}; ISA {meta['isa']}; leanconv {meta['version']}",
           f"- Load average at start: {meta['load']:.2f} (2 cores, shared machine); "
           f"run took {meta['elapsed_s']:.0f} s",
           "- Targets: auto and shapeless <= 1.15, measure <= 1.05 (bold: missed).",
           "- spread: (max - min) / median of the fastest algorithm's samples; ratio IQR: the "
           "interquartile range of the per-round ratios (the widest of the three choices); "
           "same algorithm: the control -- each choice's time over the named plan of the "
           "algorithm it picked, the same computation on the same buffers, so its distance "
           "from 1.00 (the furthest of the three shown) is the benchmark's own noise.", "",
           "### How `auto` decides, and how it was fitted", "",
           "`lc_conv_choose` (`kernels/choose.c`) counts, per algorithm that supports the call, "
           "the multiply-adds its micro-kernels run (rows and pixels rounded up to whole MR and "
           "NR panels), the patch values Im2Col or Patch2Vec unwrap, the values that go through "
           "the Winograd transforms, and the bytes read from beyond L2 (packed weights that do "
           "not fit the detected L2, once per pass over them, and an Im2Col matrix that does not "
           "fit twice L2); the arithmetic is divided among the threads the work items keep busy. "
           "The estimate is max(multiply-adds, price x streamed bytes) -- the kernels prefetch, "
           "so streaming overlaps arithmetic -- plus price x values packed or transformed. "
           "`groups == C` is always `depthwise`; Im2Col is not considered once its matrix "
           "exceeds 8 x L2 (VGG's 64@224: 115 MB, 4-8x slower than Patch2Vec). "
           "`direct_lanes` is weighed for strided layers with a kernel above 1x1, for stride-1 "
           "ones on planes of at most 256 pixels that leave the GEMM's last pixel panel "
           "part-empty (against the GEMMs, not a Winograd size the model picked; on larger "
           "stride-1 planes it ran behind the GEMMs) and, on ISAs that price its 1x1 "
           "form (pw_mac: AVX-512), for 1x1 layers of at most 256 pixels; its estimate is "
           "max(dl_mac (1x1: pw_mac, pixels rounded up to its R) x multiply-adds, price x "
           "streamed bytes) plus dl_move x the values its zero-padded input copy and its "
           "output transpose move. The prices "
           "(`lc_cost_terms`, one initializer in each `kernels/<isa>/config.c`) were fitted by "
           "`python bench/fit_cost_model.py bench/fit_data/*.json` -- a non-negative "
           "least-squares fit of relative error over a grid of streaming prices, one set of "
           "prices per ISA for every CPU it has a table of (each CPU its own time per "
           "multiply-add), so that no price is tuned to one chip -- to the 1-thread times "
           "of `python bench/algorithm_choice.py --threads 1 --json FILE` kept in "
           "`bench/fit_data` (its README says where each came from), or with `--only "
           "NAMES` some prices, the others held, on the layers where what they price runs. "
           "AVX-512's prices are an earlier fit on AMD EPYC (Zen 5), but for direct_lanes' "
           "multiply-add, `--only dl_mac` on two CPUs, the Zen 5 (L2 1 MiB) and an Intel "
           "Xeon (Sapphire Rapids class, L2 2 MiB): 0.94 (each alone 0.93 and 0.95; the "
           "earlier 1.05 kept Im2Col on 3x3/2 layers of 64 output pixels, two whole GEMM "
           "panels, where direct_lanes ran 12-20% ahead on the Xeon). A fit of every price "
           "on both tables was not taken: it moved Winograd F2 onto 2x2 and 4x4 planes, "
           "which the tables lack, where it ran 1.35-2.1x behind direct_lanes; nor on "
           "three (with an AMD EPYC Zen 4, L2 1 MiB): it picked no better than these. "
           "AVX2's are a fit of every price on two CPUs, the Xeon and the Zen 4; NEON "
           "borrows AVX2's earlier Zen 5 prices and scalar keeps the previous hand-set ones "
           "(not fitted on those CPUs). "
           "Thread counts were not fitted: on this shared 2-core machine the 2-thread wall "
           "times move with other tenants' load, so the 2-thread tables are the ones to rerun "
           "on a quiet machine.", ""]
    for threads in meta["threads"]:
        rs = [r for r in rows if r["threads"] == threads]
        out += [f"### Algorithm choice, {threads} thread{'s' if threads > 1 else ''}", "",
                "| layer | fastest | ms | spread | auto | ×fastest | shapeless | ×fastest | "
                "measure | ×fastest | ratio IQR | same algorithm |",
                "|---|---|---:|---:|---|---:|---|---:|---|---:|---:|---:|"]
        for r in rs:
            cells = []
            for c in CHOICES:
                ratio = r["ratio"][c]
                mark = "**" if ratio > TARGET[c] else ""
                cells += [r["picked"][c], f"{mark}{ratio:.2f}{mark}"]
            iqr = max(hi - lo for lo, hi in r["ratio_iqr"].values())
            cells += [f"{100 * iqr:.0f}%", f"{worst_same(r):.3f}"]
            out.append(f"| {r['layer']} | {r['fastest']} | {r['ms'][r['fastest']]:.3f} | "
                       f"{100 * r['spread']:.0f}% | " + " | ".join(cells) + " |")
        worst = {c: max(r["ratio"][c] for r in rs) for c in CHOICES}
        ok = {c: sum(r["ratio"][c] <= TARGET[c] for r in rs) for c in CHOICES}
        same = [abs(r["same"][c] - 1) for r in rs for c in CHOICES]
        spent = sorted(r["measure_s"] for r in rs)
        out += ["", "Worst ratio: " + ", ".join(f"{c} {worst[c]:.2f} ({ok[c]}/{len(rs)} layers "
                                               f"within target)" for c in CHOICES) + ".",
                "", f"Noise floor (a choice against the named plan of the algorithm it picked, "
                    f"{len(same)} pairs): median {100 * statistics.median(same):.1f}% from 1.00, "
                    f"at most {100 * max(same):.1f}%.",
                "", f"measure's first call (timing the candidates and packing them): median "
                    f"{statistics.median(spent):.2f} s, at most {spent[-1]:.2f} s per layer.", ""]
    out += ["### Algorithm choice: every algorithm (ms, median)", "",
            "| layer | threads | " + " | ".join(a for a in lc.algorithms() if a != "direct") + " |",
            "|---|---:|" + "---:|" * (len(lc.algorithms()) - 1)]
    for r in rows:
        cells = [f"{r['ms'][a]:.3f}" if a in r["ms"] else "–"
                 for a in lc.algorithms() if a != "direct"]
        out.append(f"| {r['layer']} | {r['threads']} | " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", nargs="*", default=[], help="substrings of layer names to run")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--sample-ms", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 5 ms samples")
    ap.add_argument("--json", help="also write every time here")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"),
                    help="the file whose algorithm-choice section this rewrites (the rest of "
                         "it, bench/perf_layers.py's, is left as it is)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.sample_ms = 3, 5.0
    layers = [L for L in LAYERS if not args.layers or any(s in L[0] for s in args.layers)]
    thread_counts = [int(t) for t in args.threads.split(",")]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    rows = []
    for threads in thread_counts:
        for L in layers:
            r = bench_layer(L, threads, args.rounds, args.sample_ms)
            rows.append(r)
            print(f"{threads}t {r['layer']:32s} fastest {r['fastest']:12s} "
                  f"{r['ms'][r['fastest']]:8.3f} ms  " +
                  "  ".join(f"{c} {r['picked'][c]} {r['ratio'][c]:.3f}" for c in CHOICES) +
                  "  same-algorithm " + " ".join(f"{r['same'][c]:.3f}" for c in CHOICES),
                  flush=True)
    shown, skip = [], False
    for a in sys.argv[1:]:  # the command that regenerates the table, minus where files go
        if skip or a.startswith(("--json", "--out")):
            skip = a in ("--json", "--out") and not skip
            continue
        shown.append(a)
    meta = {"command": " ".join(["python bench/algorithm_choice.py"] + shown),
            "cpu": cpu_text(), "isa": lc.isa(), "version": lc.__version__, "load": load,
            "threads": thread_counts, "elapsed_s": time.perf_counter() - start,
            # the model streams what does not fit L2: bench/fit_cost_model.py
            # prices a table under the sizes of the CPU that ran it
            "cache": lc.cpu_features()["cache"]}
    for threads in thread_counts:
        same = [abs(r["same"][c] - 1) for r in rows if r["threads"] == threads for c in CHOICES]
        if max(same) > 0.03:
            print(f"warning: at {threads} thread(s) two plans of one algorithm differ by up to "
                  f"{100 * max(same):.0f}%: the machine is too noisy for a 5% target "
                  f"(load {os.getloadavg()[0]:.1f} now); rerun it quiet", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    if args.out:
        write_section(args.out, "algorithm-choice", markdown(rows, meta) + "\n\n" + host_line())
        print(f"wrote the algorithm-choice section of {args.out}")


if __name__ == "__main__":
    main()
