"""leanconv vs PyTorch (oneDNN) vs ONNX Runtime on the conv layers of common
networks, one thread each, batch 1.  A script, not a test.

    python bench/perf_layers.py                  # every SIMD ISA here, writes docs/performance.md
    python bench/perf_layers.py --isa avx2 --json out.json   # one ISA (what the above runs per ISA)
    python bench/perf_layers.py --layers r18 --quick          # a subset, fewer repeats

Per ISA a separate process runs, so that torch can be capped to the same ISA
(ONEDNN_MAX_CPU_ISA must be set before torch is imported; AVX-512 runs use
oneDNN's default, the best it finds).  ONNX Runtime has no such switch: it
always runs its best kernels, which the table says.

Method: CPU time of the calling thread (each implementation runs on it, one
thread), so time spent descheduled on the shared machine does not count; every implementation of a layer is timed in the same process, in
interleaved rounds (ours per algorithm, torch, ORT, ours, ...), each sample a
loop of calls lasting >= --sample-ms; the figure is the median sample.  The
machine is shared, so ratios measured side by side are what to read; absolute
GFLOP/s move with the load.  leanconv runs a plan (weights packed once) with
threads=1 and a preallocated output; torch runs F.conv2d under no_grad with
set_num_threads(1); ORT runs a one-node Conv model with intra_op_num_threads=1.
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

# name, group, C, H, W, M, k, stride, pad, groups
LAYERS = [
    ("r18.conv2 3x3 64@56", "3x3s1", 64, 56, 56, 64, 3, 1, 1, 1),
    ("r18.conv3 3x3 128@28", "3x3s1", 128, 28, 28, 128, 3, 1, 1, 1),
    ("r18.conv4 3x3 256@14", "3x3s1", 256, 14, 14, 256, 3, 1, 1, 1),
    ("r18.conv5 3x3 512@7", "3x3s1", 512, 7, 7, 512, 3, 1, 1, 1),
    ("vgg16.conv1_2 3x3 64@224", "3x3s1", 64, 224, 224, 64, 3, 1, 1, 1),
    ("r18.stem 7x7/2 3->64@224", "7x7", 3, 224, 224, 64, 7, 2, 3, 1),
    ("r18.down 3x3/2 64->128@56", "strided", 64, 56, 56, 128, 3, 2, 1, 1),
    ("r50 1x1 64->256@56", "1x1", 64, 56, 56, 256, 1, 1, 0, 1),
    ("r50 1x1 256->64@56", "1x1", 256, 56, 56, 64, 1, 1, 0, 1),
    ("r50 1x1 512->128@28", "1x1", 512, 28, 28, 128, 1, 1, 0, 1),
    ("r50 1x1 1024->256@14", "1x1", 1024, 14, 14, 256, 1, 1, 0, 1),
    ("r50 1x1 2048->512@7", "1x1", 2048, 7, 7, 512, 1, 1, 0, 1),
    ("mbv2 dw 3x3 32@112", "depthwise", 32, 112, 112, 32, 3, 1, 1, 32),
    ("mbv2 dw 3x3/2 144@56", "depthwise", 144, 56, 56, 144, 3, 2, 1, 144),
]


def layer_flops(L):
    _, _, C, H, W, M, k, s, p, g = L
    OH = (H + 2 * p - k) // s + 1
    OW = (W + 2 * p - k) // s + 1
    return 2.0 * M * OH * OW * (C // g) * k * k


def sample(fn, inner):
    # CPU time of this thread: every implementation runs single-threaded on
    # the calling thread, and the machine is shared, so time spent descheduled
    # must not count (caches and memory bandwidth are still shared).
    t0 = time.thread_time()
    for _ in range(inner):
        fn()
    return (time.thread_time() - t0) / inner


def calibrate(fn, sample_s):
    fn()  # warm
    t = sample(fn, 1)
    return max(1, int(math.ceil(sample_s / max(t, 1e-7))))


def torch_runner(L, x, w, b):
    import torch
    import torch.nn.functional as F
    _, _, C, H, W, M, k, s, p, g = L
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

    def run():
        with torch.no_grad():
            return F.conv2d(xt, wt, bt, stride=s, padding=p, groups=g)
    return run, lambda: run().numpy()


def ort_runner(L, x, w, b):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    _, _, C, H, W, M, k, s, p, g = L
    OH = (H + 2 * p - k) // s + 1
    OW = (W + 2 * p - k) // s + 1
    node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], kernel_shape=[k, k], strides=[s, s],
                            pads=[p, p, p, p], group=g)
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, M, OH, OW])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def run():
        return sess.run(None, {"X": x})[0]
    return run, run


def bench_isa(isa, layer_names, rounds, sample_ms, skip_ort):
    """Runs in the child process: returns a dict for one ISA."""
    if isa == "avx2":
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    import leanconv as lc
    from leanconv import _core
    import torch
    torch.set_num_threads(1)
    try:
        if skip_ort:
            raise ImportError("skipped")
        import onnxruntime  # noqa: F401
        import onnx  # noqa: F401
        have_ort = True
        ort_version = onnxruntime.__version__
    except ImportError:
        have_ort, ort_version = False, None

    peak = max(_core.fma_peak_gflops(isa, 0.3) for _ in range(3))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ukernel_peak import kernel_gflops
    ukernel = max(kernel_gflops(isa, _core._ukernel_tile(isa)[2]) for _ in range(3))
    # ORT cannot be capped to an ISA: it runs its best kernels, so it is a
    # same-ISA peer only for the best ISA this CPU has
    ort_same_isa = isa == lc.available_isas()[-1]
    out = {"isa": isa, "peak_gflops": peak, "ort_same_isa": ort_same_isa,
           "ukernel_gflops": ukernel, "tile": _core._ukernel_tile(isa), "torch": torch.__version__, "ort": ort_version,
           "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
           "mkldnn": torch.backends.mkldnn.is_available(), "layers": []}
    rng = np.random.default_rng(0)
    for L in LAYERS:
        name, group, C, H, W, M, k, s, p, g = L
        if layer_names and not any(t in name for t in layer_names):
            continue
        x = rng.standard_normal((1, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((M, C // g, k, k)) / math.sqrt(C // g * k * k)).astype(np.float32)
        b = rng.standard_normal(M).astype(np.float32)
        runners, info = {}, {}
        with lc.use_isa(isa):
            auto = lc.Conv2d(w, b, s, p, 1, g, algorithm="auto", threads=1, input_shape=x.shape)
            algos = [a for a in lc.algorithms() if a != "direct"
                     and lc.supports(a, x.shape, w.shape, s, p, 1, g)]
            for a in algos:
                plan = lc.Conv2d(w, b, s, p, 1, g, algorithm=a, threads=1)
                y = np.empty(plan.output_shape(x.shape), np.float32)
                runners[a] = (lambda plan=plan, y=y: plan(x, out=y, threads=1))
                info[a] = {"workspace": plan.workspace_bytes(x.shape, threads=1),
                           "packed": plan.packed_bytes, "check": (lambda plan=plan: plan(x))}
        runners["torch"], torch_out = torch_runner(L, x, w, b)
        if have_ort:
            runners["ort"], _ = ort_runner(L, x, w, b)
        # agreement with torch, relative to the output scale
        ref = torch_out()
        scale = float(np.abs(ref).max()) or 1.0
        for a in algos:
            info[a]["max_rel_err"] = float(np.abs(info[a].pop("check")() - ref).max() / scale)
        inner = {key: calibrate(fn, sample_ms / 1000) for key, fn in runners.items()}
        samples = {key: [] for key in runners}
        for _ in range(rounds):
            for key, fn in runners.items():
                samples[key].append(sample(fn, inner[key]))
        med = {key: statistics.median(v) for key, v in samples.items()}
        flops = layer_flops(L)
        rec = {"name": name, "group": group, "flops": flops, "auto": auto.algorithm,
               "torch_ms": med["torch"] * 1e3, "ort_ms": med["ort"] * 1e3 if have_ort else None,
               "algos": {}}
        for a in algos:
            rec["algos"][a] = dict(info[a], ms=med[a] * 1e3, gflops=flops / med[a] / 1e9)
        out["layers"].append(rec)
        best = min(algos, key=lambda a: med[a])
        peer = min(v for v in (rec["torch_ms"], rec["ort_ms"] if ort_same_isa else None)
                   if v is not None)
        print(f"[{isa}] {name:28s} auto={auto.algorithm:12s} {med[auto.algorithm] * 1e3:8.3f} ms  "
              f"best={best:12s} {med[best] * 1e3:8.3f} ms  torch {rec['torch_ms']:8.3f}  "
              f"ort {rec['ort_ms'] if have_ort else float('nan'):8.3f}  "
              f"peer/auto {peer / (med[auto.algorithm] * 1e3):5.2f}", flush=True)
        print("    " + "  ".join(f"{a} {med[a] * 1e3:.3f}" for a in algos), flush=True)
    return out


def geomean(v):
    v = [x for x in v if x]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else float("nan")


def fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


NOTES = """## Where the time goes (perf record, AVX-512, one thread)

- GEMM micro-kernels run at 96-100% of the FMA peak on cache-resident data
  (`python bench/ukernel_peak.py`); inside the layers the GEMM part stays near
  peak, so the gaps below are everything around it.
- Winograd 3x3 (F4 on 64@56): GEMMs ~35% of the time, gathering the tile
  windows into lanes ~35%, transforms ~10%, scattering outputs ~7%.  The
  gather is strided copies of 4-14 tiles per tile row (portable C, baseline
  SSE2); it is the next thing to speed up.
- 3x3 on 512@7 and 1x1 on 2048@7: P = 49 pixels fill 16-lane vectors badly
  (32 + 16 + 1); the AVX-512 kernel takes the last 1-3 columns as row-vector
  FMAs, which leaves the GEMM near its FMA bound, plus ~10% building the patch
  matrix from 7-pixel runs.  ONNX Runtime vectorises over output channels
  (NCHWc) there and has neither cost; matching it needs a second GEMM
  orientation (pixels as MR rows, channels as NR columns) for small images.
- 7x7/2 stem and 3x3/2: the GEMM is at peak; building the stride-2 patch
  matrix (baseline-ISA copies) is 15-20% of the time.
- Depthwise: ~20 ns per output row in the AVX-512 row kernel plus border
  pixels; the layer streams 3.2 MB (32@112) per call from L3, which bounds it
  near ONNX Runtime's time.
"""


def markdown(results, command):
    lines = ["# leanconv performance", "",
             "Generated by `bench/perf_layers.py` (" + command + "). Single thread, batch 1, "
             "float32; medians of interleaved samples in one process per ISA. The machine is "
             "shared with other jobs, so read the ratios (measured side by side) rather than "
             "the absolute figures. ratio = best peer time / leanconv time (higher is better; "
             "> 1 means leanconv is faster). % peak is of the single-thread FMA peak that "
             "`leanconv._core.fma_peak_gflops(isa)` measures. GFLOP/s counts the direct convolution's flops (2·M·OH·OW·C/g·kH·kW), so Winograd, which does fewer multiplies, can pass 100% of peak.", ""]
    for r in results:
        isa, peak = r["isa"], r["peak_gflops"]
        same = r.get("ort_same_isa", True)

        def peer_ms(L):
            return min(v for v in (L["torch_ms"], L["ort_ms"] if same else None) if v is not None)
        lines += [f"## {isa}", "",
                  f"FMA peak {peak:.1f} GFLOP/s; GEMM micro-kernel {r['tile'][0]}x{r['tile'][1]} on "
                  f"cache-resident data (k = {r['tile'][2]}): {r['ukernel_gflops']:.1f} GFLOP/s = "
                  f"{100 * r['ukernel_gflops'] / peak:.0f}% of peak; torch {r['torch']} (oneDNN ISA cap: "
                  f"{r['onednn_max_cpu_isa']}), ONNX Runtime {r['ort'] or 'not installed'}"
                  f"{' (its own best ISA)' if r['ort'] else ''}."
                  + ("" if same else " ORT runs AVX-512 here whatever we ask, so it is shown but "
                     "the ratio vs the best peer counts torch (capped to this ISA) only."), "",
                  "| layer | auto | ms | GFLOP/s | % peak | torch ms | ORT ms | ratio vs torch | "
                  "ratio vs ORT | ratio vs best same-ISA peer | fastest algorithm (ms) | auto / fastest |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        groups = {}
        for L in r["layers"]:
            a = L["auto"]
            A = L["algos"][a]
            best = min(L["algos"], key=lambda k: L["algos"][k]["ms"])
            ratio = peer_ms(L) / A["ms"]
            groups.setdefault(L["group"], []).append(ratio)
            ort = f"{L['ort_ms']:.3f}" if L["ort_ms"] is not None else "-"
            vs_ort = f"{L['ort_ms'] / A['ms']:.2f}" if L["ort_ms"] is not None else "-"
            lines.append(f"| {L['name']} | {a} | {A['ms']:.3f} | {A['gflops']:.1f} | "
                         f"{100 * A['gflops'] / peak:.0f}% | {L['torch_ms']:.3f} | {ort} | "
                         f"{L['torch_ms'] / A['ms']:.2f} | {vs_ort} | **{ratio:.2f}** | "
                         f"{best} ({L['algos'][best]['ms']:.3f}) | {A['ms'] / L['algos'][best]['ms']:.2f} |")
        lines += ["", "Geometric mean of the ratio vs the best peer, per kind of layer: " +
                  ", ".join(f"{g} {geomean(v):.2f}x (min {min(v):.2f})" for g, v in groups.items()) +
                  ".", "", f"### {isa}: every algorithm", "",
                  "| layer | algorithm | ms | GFLOP/s | % peak | workspace | packed weights | "
                  "ratio vs best peer | max rel. err vs torch |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for L in r["layers"]:
            peer = peer_ms(L)
            for a, A in sorted(L["algos"].items(), key=lambda kv: kv[1]["ms"]):
                lines.append(f"| {L['name']} | {a} | {A['ms']:.3f} | {A['gflops']:.1f} | "
                             f"{100 * A['gflops'] / peak:.0f}% | {fmt_bytes(A['workspace'])} | "
                             f"{fmt_bytes(A['packed'])} | {peer / A['ms']:.2f} | {A['max_rel_err']:.1e} |")
        p2v = [(L["name"], L["algos"]["im2col"]["ms"] / L["algos"]["patch2vec"]["ms"])
               for L in r["layers"] if "patch2vec" in L["algos"] and "im2col" in L["algos"]]
        if p2v:
            lines += ["", "Patch2Vec speed relative to Im2Col (im2col ms / patch2vec ms): " +
                      ", ".join(f"{n} {v:.2f}" for n, v in p2v) + "."]
        lines.append("")
    lines.append(NOTES)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isa", help="one ISA, in this process (default: every SIMD ISA, one child each)")
    ap.add_argument("--json", help="with --isa: write the results here")
    ap.add_argument("--layers", nargs="*", default=[], help="substrings of layer names to run")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--sample-ms", type=float, default=30.0)
    ap.add_argument("--quick", action="store_true", help="5 rounds of 10 ms samples")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.sample_ms = 5, 10.0
    if args.isa:
        res = bench_isa(args.isa, args.layers, args.rounds, args.sample_ms, args.no_ort)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return
    import leanconv as lc
    isas = [i for i in lc.available_isas() if i != "scalar"][::-1]
    results = []
    for isa in isas:
        tmp = ROOT / "bench" / f".perf_{isa}.json"
        cmd = [sys.executable, __file__, "--isa", isa, "--json", str(tmp), "--rounds", str(args.rounds),
               "--sample-ms", str(args.sample_ms)] + (["--layers", *args.layers] if args.layers else []) \
            + (["--no-ort"] if args.no_ort else [])
        subprocess.run(cmd, check=True)
        results.append(json.loads(tmp.read_text()))
        tmp.unlink()
    command = "`python bench/perf_layers.py" + (" --quick" if args.quick else "") + "`"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(markdown(results, command))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
