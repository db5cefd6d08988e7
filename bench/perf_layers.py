"""leanconv vs PyTorch (oneDNN), ONNX Runtime, OpenVINO and ncnn on the conv
layers of common networks and the layer kinds of `leanconv bench --suite
kinds`, batch 1, at 1 and 2 threads.  A script, not a test.

    python bench/perf_layers.py                  # every SIMD ISA here, writes docs/performance.md
    python bench/perf_layers.py --isa avx2 --json out.json   # one ISA (what the above runs per ISA)
    python bench/perf_layers.py --layers dw --quick          # a subset, fewer repeats

Per ISA a separate process runs, so that torch can be capped to the same ISA
(ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS, set before torch is imported:
oneDNN runs its convolutions, MKL its 1x1 ones).  The best ISA runs
against all four peers; a lower ISA (AVX2 forced) runs against torch capped
to it only, since ONNX Runtime, OpenVINO and ncnn have no such switch.

Method: the peers are built exactly as `leanconv bench --compare` builds them
(leanconv/cli/peers.py: OpenVINO forced to f32, ncnn's fp16/bf16 options off,
every engine at the same thread count).  leanconv runs a plan of the algorithm
"auto" picks (weights packed once, output preallocated).  Every engine of a
layer is timed in the same process in interleaved rounds (leanconv, torch,
ORT, OpenVINO, ncnn, leanconv, ...); before each sample the parent waits
until every other thread of the process (the engines' pools) has used no CPU
for 5 ms and none is runnable, so no engine's idle pool still spins in the
next one's sample, then makes one untimed call (every engine wakes its
sleeping pool alike); a sample during which other processes on the machine
used more than a quarter of a core is taken again, up to twice
(bench/_rotation.py's InProcess).  Each sample is a loop of calls lasting
>= --sample-ms of wall time (some peers run on their own worker threads, so
the calling thread's CPU time would not count their work).  The figure is the
median sample; spread = interquartile range / median.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# numpy's BLAS threads would spin on the other core while we time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
from _source_tree import use_source_tree  # noqa: E402
use_source_tree()

from leanconv.cli.suites import KINDS, Layer  # noqa: E402
from doc_section import host_line, read_section  # noqa: E402  (same folder)
import _rotation  # noqa: E402  (same folder)

PEERS = ("torch", "onnxruntime", "openvino", "ncnn")
SHORT = {"torch": "torch", "onnxruntime": "ORT", "openvino": "OpenVINO", "ncnn": "ncnn"}
THREADS = (1, 2)


def _L(name, C, H, M, k, stride=1, groups=1):
    return Layer(name, C, H, H, M, k, k, stride=stride, pad=k // 2, groups=groups)


# (group, layer): the networks' layers, then the kinds not already among them
LAYERS = [
    ("3x3s1", _L("r18 3x3 64@56", 64, 56, 64, 3)),
    ("3x3s1", _L("r18 3x3 128@28", 128, 28, 128, 3)),
    ("3x3s1", _L("r18 3x3 256@14", 256, 14, 256, 3)),
    ("3x3s1", _L("r18 3x3 512@7", 512, 7, 512, 3)),
    ("3x3s1", _L("vgg16 3x3 64@224", 64, 224, 64, 3)),
    ("strided", _L("r18 stem 7x7/2 3>64@224", 3, 224, 64, 7, stride=2)),
    ("strided", _L("r18 3x3/2 64>128@56", 64, 56, 128, 3, stride=2)),
    ("1x1", _L("r50 1x1 64>256@56", 64, 56, 256, 1)),
    ("1x1", _L("r50 1x1 256>64@56", 256, 56, 64, 1)),
    ("1x1", _L("r50 1x1 512>128@28", 512, 28, 128, 1)),
    ("1x1", _L("r50 1x1 1024>256@14", 1024, 14, 256, 1)),
    ("1x1", _L("r50 1x1 2048>512@7", 2048, 7, 512, 1)),
    # MobileNetV2's 1x1 convs (3/4 of its time): K = 16 expand on the largest image, a
    # 24-channel projection, an expand at 14x14 and a projection at 7x7
    ("1x1", _L("mbv2 1x1 16>96@112", 16, 112, 96, 1)),
    ("1x1", _L("mbv2 1x1 144>24@56", 144, 56, 24, 1)),
    ("1x1", _L("mbv2 1x1 96>576@14", 96, 14, 576, 1)),
    ("1x1", _L("mbv2 1x1 960>160@7", 960, 7, 160, 1)),
    # a 14 x 14 project layer: channels shrink 6x (direct_lanes' 1x1 form, AVX-512)
    ("1x1", _L("mbv2 1x1 576>96@14", 576, 14, 96, 1)),
    ("depthwise", _L("mbv2 dw 3x3 32@112", 32, 112, 32, 3, groups=32)),
    ("depthwise", _L("mbv2 dw 3x3/2 144@56", 144, 56, 144, 3, stride=2, groups=144)),
]


def _kind_group(L):
    if L.groups == L.C:
        return "depthwise"
    if L.groups > 1:
        return "grouped"
    if L.stride > 1:
        return "strided"
    return "1x1" if L.kH == 1 else "3x3s1"


def _same_shape(a, b):
    return (a.x_shape, a.w_shape, a.stride, a.pad, a.groups) == (b.x_shape, b.w_shape, b.stride,
                                                                 b.pad, b.groups)


LAYERS += [(_kind_group(k), k) for k in KINDS if not any(_same_shape(k, L) for _, L in LAYERS)]


def _sample(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _calibrate(fn, sample_s):
    fn()  # warm
    fn()
    t = _sample(fn, 1)
    return max(1, int(math.ceil(sample_s / max(t, 1e-7))))


def _stats(v):
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
    med = statistics.median(v)
    return {"ms": med * 1e3, "spread": (q[2] - q[0]) / med if med else 0.0}


def _data(L, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(L.x_shape, dtype=np.float32)
    fan_in = (L.C // L.groups) * L.kH * L.kW
    w = (rng.standard_normal(L.w_shape, dtype=np.float32) / np.float32(math.sqrt(fan_in)))
    b = rng.standard_normal(L.M, dtype=np.float32)
    return x, w, b


def bench_isa(isa, name_filters, rounds, sample_ms, peer_names, all_algorithms):
    """Runs in the child process: returns a dict for one ISA."""
    if isa == "avx2":
        # both of torch's CPU back ends, before torch is imported: oneDNN runs
        # most convolutions, but 1x1 ones went to MKL's GEMM, which ignores
        # oneDNN's cap (205 GFLOP/s on one Xeon thread, past AVX2's FMA peak
        # of 133, until MKL's own cap was set too)
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
    import leanconv as lc
    from leanconv import _core
    from leanconv.cli.peers import load_peers
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ukernel_peak import kernel_gflops

    peak = max(_core.fma_peak_gflops(isa, 0.3) for _ in range(3))
    ukernel = max(kernel_gflops(isa, _core._ukernel_tile(isa)[2]) for _ in range(3))
    out = {"isa": isa, "peak_gflops": peak, "ukernel_gflops": ukernel,
           "tile": _core._ukernel_tile(isa),
           "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
           "mkl_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS", "default"),
           "peers": {}, "runs": []}
    layers = [(g, L) for g, L in LAYERS
              if not name_filters or any(t in L.name for t in name_filters)]
    for threads in THREADS:
        peers, status = load_peers(peer_names, threads)
        out["peers"][threads] = status
        for group, L in layers:
            rec = _bench_layer(lc, isa, L, group, threads, peers, rounds, sample_ms,
                               all_algorithms and threads == 1)
            out["runs"].append(rec)
            ours = rec["ours"][rec["auto"]]["ms"]
            best = min(rec["peers"].items(), key=lambda kv: kv[1]["ms"], default=None)
            print(f"[{isa} T{threads}] {L.name:26s} {rec['auto']:12s} {ours:8.3f} ms  " +
                  "  ".join(f"{SHORT[n]} {v['ms']:.3f}" for n, v in rec["peers"].items()) +
                  (f"  ratio {best[1]['ms'] / ours:5.2f}" if best else ""), flush=True)
    return out


def _bench_layer(lc, isa, L, group, threads, peers, rounds, sample_ms, all_algorithms):
    x, w, b = _data(L)
    kw = dict(stride=L.stride, padding=L.pad, dilation=L.dilation, groups=L.groups)
    runners, info = {}, {}
    with lc.use_isa(isa):
        auto = lc.Conv2d(w, b, algorithm="auto", threads=threads, input_shape=x.shape, **kw)
        algos = [auto.algorithm]
        if all_algorithms:
            algos += [a for a in lc.algorithms() if a not in ("direct", auto.algorithm)
                      and lc.supports(a, x.shape, w.shape, **kw)]
        for a in algos:
            plan = auto if a == auto.algorithm else lc.Conv2d(w, b, algorithm=a, threads=threads,
                                                              **kw)
            y = np.empty(plan.output_shape(x.shape), np.float32)
            runners[("ours", a)] = (lambda plan=plan, y=y: plan(x, out=y, threads=threads))
            info[a] = {"workspace": plan.workspace_bytes(x.shape, threads=threads),
                       "packed": plan.packed_bytes, "y": plan(x, threads=threads)}
    peer_out = {}
    for peer in peers:
        try:
            runners[("peer", peer.name)] = run = peer.prepare(L, x, w, b)
            peer_out[peer.name] = np.asarray(peer.to_numpy(run()))
        except Exception as e:  # a peer refusing a layer is its result
            print(f"    {peer.name} could not run {L.name}: {e}", flush=True)
            runners.pop(("peer", peer.name), None)
    # every engine must compute the same convolution for the times to compare
    ref = next(iter(peer_out.values()), None)
    if ref is not None:
        scale = float(np.abs(ref).max()) or 1.0
        for a in algos:
            info[a]["max_rel_err"] = float(np.abs(info[a]["y"] - ref).max() / scale)
        for n, y in peer_out.items():
            err = float(np.abs(y - ref).max() / scale)
            if err > 1e-3:
                print(f"    WARNING {n} differs from the first peer by {err:.1e}", flush=True)
    for a in algos:
        info[a].pop("y")
    inner = {key: _calibrate(fn, sample_ms / 1000) for key, fn in runners.items()}
    samples = {key: [] for key in runners}
    turns = _rotation.InProcess()
    for _ in range(rounds):
        for key, fn in runners.items():
            samples[key].append(turns.sample(fn, lambda fn=fn, n=inner[key]: _sample(fn, n)))
    flops = L.flops
    rec = {"name": L.name, "group": group, "threads": threads, "flops": flops,
           "auto": auto.algorithm, "ours": {}, "peers": {},
           "redone": turns.redone / max(1, turns.samples)}
    for (kind, name), v in samples.items():
        st = _stats(v)
        st["gflops"] = flops / (st["ms"] / 1e3) / 1e9
        if kind == "ours":
            rec["ours"][name] = dict(info[name], **st)
        else:
            rec["peers"][name] = st
    return rec


def geomean(v):
    v = [x for x in v if x]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else float("nan")


def fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


NOTES_FILE = ROOT / "bench" / "perf_notes.md"


def _ms(v):
    return f"{v['ms']:.3f} ±{100 * v['spread']:.0f}%"


def markdown(results, command, cpu, loads):
    lines = ["# leanconv performance", "",
             f"Generated by {command} on **{cpu}**; load average {loads[0]:.2f} before, "
             f"{loads[1]:.2f} after (2 cores). Batch 1, float32; the input is a NumPy array "
             "as a user's would be (NumPy aligns data to 16 bytes, not to a cache line: "
             "large arrays start 16 bytes past one), the same array given to every engine. "
             "Each figure is the median of "
             "interleaved wall-clock samples in one process per ISA (each after the other "
             "engines' pools have gone quiet and one untimed call: bench/_rotation.py), "
             "±spread = interquartile range / median. ratio = best peer's time / leanconv's time (> 1: leanconv is "
             "faster); leanconv runs the algorithm `auto` picks. Peers are built as "
             "`leanconv bench --compare` builds them (python/leanconv/cli/peers.py): OpenVINO "
             "with INFERENCE_PRECISION_HINT=f32, ncnn with its fp16/bf16 options off, every "
             "engine at the same thread count. % peak is of the single-thread FMA peak "
             "(`leanconv._core.fma_peak_gflops`), times the thread count; GFLOP/s counts the "
             "direct convolution's flops, so Winograd can pass 100%.", ""]
    for r in results:
        isa, peak = r["isa"], r["peak_gflops"]
        lines += [f"## {isa}", "",
                  f"FMA peak {peak:.1f} GFLOP/s per thread; GEMM micro-kernel {r['tile'][0]}x"
                  f"{r['tile'][1]} on cache-resident data (k = {r['tile'][2]}): "
                  f"{r['ukernel_gflops']:.1f} GFLOP/s = {100 * r['ukernel_gflops'] / peak:.0f}% "
                  f"of peak. torch's ISA caps: oneDNN {r['onednn_max_cpu_isa']}, "
                  f"MKL {r.get('mkl_instructions', 'default')}.", ""]
        for threads, status in r["peers"].items():
            lines.append(f"Peers at {threads} thread(s): " + "; ".join(
                f"{n} {s['version']} ({s['config']})" if s["status"] == "ok"
                else f"{n} {s['status']}: {s['reason']}" for n, s in status.items()) + ".")
        for threads in sorted({run["threads"] for run in r["runs"]}):
            redone = [run.get("redone", 0) for run in r["runs"] if run["threads"] == threads]
            lines.append(f"Samples taken again at {threads} thread(s) because other processes "
                         f"disturbed them: {100 * sum(redone) / max(1, len(redone)):.0f}% "
                         "(0% on a quiet machine).")
        lines.append("")
        for threads in THREADS:
            runs = [x for x in r["runs"] if x["threads"] == threads]
            if not runs:
                continue
            names = [n for n in PEERS if any(n in x["peers"] for x in runs)]
            lines += [f"### {isa}, {threads} thread{'s' if threads > 1 else ''}", "",
                      "| layer | auto | leanconv ms | % peak | " +
                      " | ".join(f"{SHORT[n]} ms" for n in names) +
                      " | best peer | **ratio** |",
                      "|---|---|---:|---:|" + "---:|" * len(names) + "---|---:|"]
            ratios, groups, below = [], {}, []
            for x in runs:
                A = x["ours"][x["auto"]]
                cells = [_ms(x["peers"][n]) if n in x["peers"] else "-" for n in names]
                if x["peers"]:
                    bn, bv = min(x["peers"].items(), key=lambda kv: kv[1]["ms"])
                    ratio = bv["ms"] / A["ms"]
                    ratios.append(ratio)
                    groups.setdefault(x["group"], []).append(ratio)
                    if ratio < 1.0:
                        below.append(f"{x['name']} {ratio:.2f}")
                    best = f"{SHORT[bn]} {bv['ms']:.3f}"
                else:
                    ratio, best = float("nan"), "-"
                lines.append(f"| {x['name']} | {x['auto']} | {_ms(A)} | "
                             f"{100 * A['gflops'] / (peak * threads):.0f}% | " +
                             " | ".join(cells) + f" | {best} | **{ratio:.2f}** |")
            lines += ["", f"Geometric mean of the ratio: **{geomean(ratios):.2f}x** over "
                      f"{len(ratios)} layers; per kind: " +
                      ", ".join(f"{g} {geomean(v):.2f}x (min {min(v):.2f})"
                                for g, v in groups.items()) + ". Below 1.0: " +
                      (", ".join(below) if below else "none") + ".", ""]
        every = [x for x in r["runs"] if x["threads"] == 1 and len(x["ours"]) > 1]
        if every:
            lines += [f"### {isa}, 1 thread: every algorithm", "",
                      "| layer | algorithm | ms | GFLOP/s | % peak | workspace | packed weights | "
                      "ratio vs best peer | max rel. err vs first peer |",
                      "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
            for x in every:
                best = min((v["ms"] for v in x["peers"].values()), default=float("nan"))
                for a, A in sorted(x["ours"].items(), key=lambda kv: kv[1]["ms"]):
                    err = A.get("max_rel_err")
                    lines.append(f"| {x['name']} | {a} | {A['ms']:.3f} | {A['gflops']:.1f} | "
                                 f"{100 * A['gflops'] / peak:.0f}% | {fmt_bytes(A['workspace'])} | "
                                 f"{fmt_bytes(A['packed'])} | {best / A['ms']:.2f} | "
                                 f"{'-' if err is None else f'{err:.1e}'} |")
            lines.append("")
    if NOTES_FILE.exists():
        lines.append(NOTES_FILE.read_text())
    return "\n".join(lines)


# sections other scripts write into the same file, between their markers
KEPT_SECTIONS = ("neon-mca", "algorithm-choice")  # bench/neon_mca.py, bench/algorithm_choice.py


def kept_sections(path):
    """Sections other scripts write into the same file (between their
    markers): carried over when this script rewrites it."""
    return "".join(f"\n{sec}\n" for sec in (read_section(path, n) for n in KEPT_SECTIONS) if sec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isa", help="one ISA, in this process (default: every SIMD ISA, one child each)")
    ap.add_argument("--json", help="with --isa: write the results here")
    ap.add_argument("--layers", nargs="*", default=[], help="substrings of layer names to run")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--sample-ms", type=float, default=15.0)
    ap.add_argument("--quick", action="store_true", help="5 rounds of 5 ms samples")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="peers for the best ISA (lower ISAs: torch only)")
    ap.add_argument("--no-all-algorithms", action="store_true",
                    help="skip the every-algorithm table of the best ISA")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.sample_ms = 5, 5.0
    peer_names = [p for p in args.peers.split(",") if p]
    if args.isa:
        res = bench_isa(args.isa, args.layers, args.rounds, args.sample_ms, peer_names,
                        not args.no_all_algorithms)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return
    import leanconv as lc
    from leanconv.cli.hardware import cpu_name
    isas = [i for i in lc.available_isas() if i != "scalar"][::-1]
    loads = [os.getloadavg()[0]]
    results = []
    for i, isa in enumerate(isas):
        tmp = ROOT / "bench" / f".perf_{isa}.json"
        best = i == 0
        cmd = [sys.executable, __file__, "--isa", isa, "--json", str(tmp), "--rounds",
               str(args.rounds), "--sample-ms", str(args.sample_ms),
               "--peers", ",".join(peer_names) if best else "torch"] \
            + (["--layers", *args.layers] if args.layers else []) \
            + (["--no-all-algorithms"] if args.no_all_algorithms or not best else [])
        subprocess.run(cmd, check=True)
        results.append(json.loads(tmp.read_text()))
        tmp.unlink()
    loads.append(os.getloadavg()[0])
    command = "`python bench/perf_layers.py" + (" --quick" if args.quick else "") + "`"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(markdown(results, command, cpu_name(), loads) + "\n" + host_line()
                              + "\n" + kept_sections(args.out))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
