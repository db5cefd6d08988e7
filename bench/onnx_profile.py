"""Where a model's time goes on leanconv.onnx and on onnxruntime, by op kind.

    python bench/onnx_profile.py MODEL.onnx [MODEL.onnx ...] [--runs 20] [--steps] [--threads 1]
    python bench/onnx_profile.py MODEL.onnx --threads 2 --scaling [--top 25]

Both engines at --threads threads (default 1) in this process, each profiled step by step: leanconv
through the schedule's per-step timings (`rep.program.run(feeds, timings)`;
a Conv step includes what was fused into it), onnxruntime through its own
profiler (SessionOptions.enable_profiling, kernel time per node; its graph is
its own: NCHWc reorders, fused activations).  Per step / node the median over
the runs, summed per op kind: medians are robust to the preemptions of a
loaded machine, which whole-run times are not; the sums of medians are
printed with their ratio (onnxruntime / leanconv: above 1, leanconv is
faster).  --steps lists every step and node as well.

--scaling compares leanconv with itself at 1 and --threads threads instead
(one process, the two prepared models taking turns): per step its median
inside the model's run (data and weights as the previous steps left the
caches: the median, and the best, which a loaded machine disturbs least)
and its best time called again straight away (everything it reads already
cached), with the time each thread count spends, their ratio, and the time
the median loses against a perfect split (t_n - t_1 / n), largest first.
A step that scales when hot but not in the run waits on memory (weights
streamed once per run, activations written by the other core); one that
scales in neither has too little work to split or a serial part."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from _source_tree import use_source_tree  # noqa: E402
use_source_tree()

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


def scaling_rows(model, feeds, runs, threads):
    """Per scheduled step of leanconv at 1 and `threads` threads, interleaved:
    [(step, {n: (in-run median, in-run best, hot best)})] in program order, plus
    {n: median whole-run seconds}."""
    import time
    counts = (1, threads)
    reps = {n: lco.prepare(model, threads=n) for n in counts}
    bound = {n: reps[n].feeds(feeds) for n in counts}
    in_run = {n: {} for n in counts}
    hot = {n: {} for n in counts}
    whole = {n: [] for n in counts}
    for n in counts:
        for _ in range(3):
            reps[n].run(bound[n])
    for _ in range(runs):
        for n in counts:
            time.sleep(0.003)
            t0 = time.perf_counter()
            reps[n].run(bound[n])
            whole[n].append(time.perf_counter() - t0)
            timings = []
            reps[n].program.run(bound[n], timings)
            for i, (_, t) in enumerate(timings):
                in_run[n].setdefault(i, []).append(t)
            for i, (_, call) in enumerate(reps[n].program.schedule._timed):
                if call is not None:
                    t0 = time.perf_counter()
                    call()
                    hot[n].setdefault(i, []).append(time.perf_counter() - t0)
    steps = [s for s, _ in reps[1].program.schedule._timed]
    rows = []
    for i, step in enumerate(steps):
        if i not in hot[1]:
            continue   # no run-time work (folded, a view, a Concat written in place)
        rows.append((step, {n: (statistics.median(in_run[n][i]), min(in_run[n][i]),
                                min(hot[n][i]))
                            for n in counts}))
    return rows, {n: statistics.median(whole[n]) for n in counts}


def conv_shape(step):
    """'C>M kK sS @H algorithm' of a Conv step as last run, else ''."""
    conv = getattr(step, "conv", None)
    if conv is None or conv.last_plan is None:
        return ""
    spec, x = conv.last_plan.spec, conv.last_input_shape
    return (f"{x[1]}>{spec.M} k{spec.kH}x{spec.kW} s{spec.stride[0]} @{x[2]}x{x[3]} "
            f"{conv.last_plan.algorithm}")


def report_scaling(path, runs, threads, top):
    model = onnx.load(str(path))
    rows, whole = scaling_rows(model, random_inputs(model), runs, threads)
    n = threads

    def loss(r):   # in-run time lost against a perfect split
        return r[1][n][0] - r[1][1][0] / n
    print(f"{path}  (leanconv, 1 against {n} threads, load average {os.getloadavg()[0]:.2f})")
    print(f"  whole run median: {whole[1] * 1e3:.3f} ms / {whole[n] * 1e3:.3f} ms "
          f"= {whole[1] / whole[n]:.2f}x")
    for k, what in ((0, "in the run (median)"), (1, "in the run (best)"), (2, "hot (best)")):
        t1, tn = (sum(r[1][c][k] for r in rows) for c in (1, n))
        print(f"  sum of steps {what}: {t1 * 1e3:.3f} ms / {tn * 1e3:.3f} ms = {t1 / tn:.2f}x")
    head = "".join(f" {what + ' 1t':>9} {what + ' ' + str(n) + 't':>9} {'x':>5}"
                   for what in ("run", "best", "hot"))
    print(f"  {'step':<36} {'node':<14}{head} {'lost':>7}  conv")
    for step, t in sorted(rows, key=loss, reverse=True)[:top]:
        cols = "".join(f" {t[1][k] * 1e3:9.3f} {t[n][k] * 1e3:9.3f} {t[1][k] / t[n][k]:5.2f}"
                       for k in range(3))
        print(f"  {step.label()[:36]:<36} {step.name[:14]:<14}{cols} "
              f"{(t[n][0] - t[1][0] / n) * 1e3:7.3f}  {conv_shape(step)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--steps", action="store_true", help="list every step and node too")
    p.add_argument("--threads", type=int, default=1, help="threads of both engines")
    p.add_argument("--scaling", action="store_true",
                   help="leanconv at 1 against --threads threads, step by step, instead")
    p.add_argument("--top", type=int, default=25, help="steps --scaling lists")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be at least 1")
    if a.scaling and a.threads < 2:
        p.error("--scaling needs --threads of 2 or more")
    for path in a.models:
        if a.scaling:
            report_scaling(path, a.runs, a.threads, a.top)
        else:
            report(path, a.runs, a.steps, a.threads)


if __name__ == "__main__":
    main()
