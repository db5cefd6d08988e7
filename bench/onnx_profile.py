"""Where a model's time goes on leanconv.onnx and on onnxruntime, by op kind.

    python bench/onnx_profile.py MODEL.onnx [MODEL.onnx ...] [--runs 20] [--steps] [--threads 1]

Both engines at --threads threads (default 1) in this process, each profiled step by step: leanconv
through the schedule's per-step timings (`rep.program.run(feeds, timings)`;
a Conv step includes what was fused into it), onnxruntime through its own
profiler (SessionOptions.enable_profiling, kernel time per node; its graph is
its own: NCHWc reorders, fused activations).  Per step / node the median over
the runs, summed per op kind: medians are robust to the preemptions of a
loaded machine, which whole-run times are not; the sums of medians are
printed with their ratio (onnxruntime / leanconv: above 1, leanconv is
faster).  --steps lists every step and node as well."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

import onnx  # noqa: E402

import leanconv.onnx as lco  # noqa: E402
from leanconv.onnx.bench import _profile as step_medians  # noqa: E402
from leanconv.onnx.bench import random_inputs  # noqa: E402


def leanconv_steps(model, feeds, runs, threads):
    """[(label, name, median seconds)] of every scheduled step."""
    rep = lco.prepare(model, threads=threads)
    feeds = rep.feeds(feeds)
    for _ in range(3):
        rep.run(feeds)
    return [(s.label(), s.name, t) for s, t in step_medians(rep, feeds, runs)]


def ort_nodes(model, feeds, runs, threads):
    """[(op type, node name, median seconds)] from onnxruntime's profiler."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):
            sess.run(None, feeds)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    per = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per.setdefault(e["name"], [e["args"]["op_name"], []])[1].append(e["dur"] * 1e-6)
    return [(op, name[:-len("_kernel_time")], statistics.median(ts[3:] or ts))
            for name, (op, ts) in per.items()]


def by_kind(rows):
    kinds = {}
    for kind, _, t in rows:
        n, s = kinds.get(kind, (0, 0.0))
        kinds[kind] = (n + 1, s + t)
    return sorted(kinds.items(), key=lambda kv: -kv[1][1])


def report(path, runs, steps, threads):
    model = onnx.load(str(path))
    feeds = random_inputs(model)
    ours = leanconv_steps(model, feeds, runs, threads)
    theirs = ort_nodes(model, feeds, runs, threads)
    lc, ort_s = sum(t for *_, t in ours), sum(t for *_, t in theirs)
    print(f"{path}  ({threads} thread(s), load average {os.getloadavg()[0]:.2f})")
    print(f"  sum of step medians: leanconv {lc * 1e3:.3f} ms, onnxruntime {ort_s * 1e3:.3f} ms, "
          f"onnxruntime / leanconv {ort_s / lc:.3f}")
    for title, rows in (("leanconv", ours), ("onnxruntime", theirs)):
        print(f"  {title} by kind (steps, ms):")
        for kind, (n, t) in by_kind(rows):
            print(f"    {kind:<48} {n:4d} {t * 1e3:8.3f}")
        if steps:
            for kind, name, t in rows:
                print(f"      {name[:60]:<60} {kind[:32]:<32} {t * 1e3:8.4f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--steps", action="store_true", help="list every step and node too")
    p.add_argument("--threads", type=int, default=1, help="threads of both engines")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be at least 1")
    for path in a.models:
        report(path, a.runs, a.steps, a.threads)


if __name__ == "__main__":
    main()
