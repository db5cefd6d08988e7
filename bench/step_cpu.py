"""What each step of a model costs its threads, in thread CPU time: runs one
ONNX model through leanconv.onnx at 1 and --threads threads (interleaved, one
process) with the pool's debug trace on, and per step prints the median CPU
time of its busiest thread (each parallel loop's busiest slot, summed over the
step's loops) and of all its threads.  A diagnostic, not a table in docs/:

    python bench/step_cpu.py /tmp/oxcache/resnet50-128-torchscript.onnx [--json new.json]
    python bench/step_cpu.py --compare base.json new.json   (two builds, run one after the other)
    python bench/step_cpu.py MODEL.onnx --env LC_TRY   (one build, a switch: see below)

--env NAME sets two preparations of the model side by side in one process,
both at --threads: A as built, B prepared with NAME=1 in the environment
(for a getenv switch put into a kernel's plan while trying a rule; plans are
made at prepare, so B keeps it).  Their runs alternate, and per step it
prints both busiest-thread CPU times and the 10th percentile of the step's
wall time: a split that only moves time into the wait at a barrier shows
in the second, not the first.  Interleaved in one process, it resolves a
few percent of a step on a machine where two processes run one after the
other do not (load 4: SqueezeNet 1.1 128's p20 at 2 threads was 2.23 ms in
one process and 1.85 in the next).
Run it once with a NAME nothing reads first: the rows that differ there are
the harness's own spread (SqueezeNet 1.1's stem, the first step, whose
samples are seldom clean, came out 85-125 us slower in B, the second
preparation, in 4 runs of 4, of about 100; in 1 run with B prepared first,
neither was; the other steps mostly within 10 us, Winograd 32>128 @15 up
to 28).

Why CPU time: on a machine other work shares, a 2-thread step's wall time
mostly says whether the worker got a CPU (its medians ran at 2x the best at
load 4); the busiest thread's CPU time leaves out the time the OS ran other
work and still shows what the split costs -- data another core wrote,
weights each thread streams, imbalance.  Only samples where every loop of
the step ran on all its slots in the pool's static shares (no item stolen:
the worker was there from the start) count at N threads; `clean` says how
many were."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from _source_tree import use_source_tree  # noqa: E402
use_source_tree()


def step_costs(spans, records):
    """Per (step index, start ns, end ns) span, from the trace records that
    started inside it: (busiest-slot CPU ns summed over its loops, all
    slots' CPU ns, whether every multi-slot loop ran its static shares)."""
    recs = sorted(records, key=lambda q: q["start_ns"])
    out, k = [], 0
    for j, a, z in spans:
        crit = work = 0
        clean = True
        while k < len(recs) and recs[k]["start_ns"] < a:
            k += 1
        while k < len(recs) and recs[k]["start_ns"] <= z:
            q = recs[k]
            team = max(1, q["team"])
            cpu = q["cpu_ns"][:team]
            crit += max(cpu)
            work += sum(cpu)
            shares = [q["count"] * (s + 1) // team - q["count"] * s // team for s in range(team)]
            clean &= team == 1 or q["items"][:team] == shares
            k += 1
        out.append((j, crit, work, clean))
    return out


def prepared(model, threads, env=None):
    """{1: the model at 1 thread, threads: at `threads`}; with env, {"A": at
    `threads` as built, "B": at `threads` prepared with env=1 set}."""
    import leanconv.onnx as lco
    if env is None:
        return {t: lco.prepare(model, threads=t) for t in (1, threads)}
    reps = {"A": lco.prepare(model, threads=threads)}
    before = os.environ.get(env)
    os.environ[env] = "1"
    try:
        reps["B"] = lco.prepare(model, threads=threads)
    finally:
        if before is None:
            del os.environ[env]
        else:
            os.environ[env] = before
    return reps


def profile(path, threads, runs, env=None):
    """{key: {step index: [label, [(crit, work, clean, wall)]]}} over `runs`
    traced runs of each preparation (`prepared`), in alternating order."""
    import onnx

    from leanconv import _core
    from leanconv.onnx.bench import random_inputs
    from onnx_profile import conv_shape
    model = onnx.load(path)
    feeds = random_inputs(model)
    reps = prepared(model, threads, env)
    bound = {t: r.feeds(feeds) for t, r in reps.items()}
    data = {t: {} for t in reps}
    for i in range(runs):
        for t, rep in (reps.items() if i % 2 == 0 else reversed(reps.items())):
            time.sleep(0.002)
            rep.run(bound[t])   # workers awake, caches as a run leaves them
            spans = []
            _core.pool_trace(100_000)
            try:
                for j, (_, call) in enumerate(rep.program.schedule._timed):
                    if call is not None:
                        a = time.monotonic_ns()
                        call()
                        spans.append((j, a, time.monotonic_ns()))
                recs = _core.pool_trace()
            finally:
                _core.pool_trace(0)
            steps = rep.program.schedule._timed
            walls = {j: z - a for j, a, z in spans}
            for j, crit, work, clean in step_costs(spans, recs):
                label = conv_shape(steps[j][0]) or steps[j][0].label()
                data[t].setdefault(j, [label, []])[1].append((crit, work, clean, walls[j]))
    return data


def summary(data):
    """{threads: {step: [label, crit us, work us, clean share]}}: medians over the clean samples."""
    out = {}
    for t, steps in data.items():
        out[t] = {}
        for j, (label, samples) in steps.items():
            clean = [s for s in samples if s[2]] or samples
            out[t][j] = [label, statistics.median(s[0] for s in clean) / 1e3,
                         statistics.median(s[1] for s in clean) / 1e3,
                         sum(s[2] for s in samples) / len(samples),
                         wall_p10(samples)]
    return out


def wall_p10(samples):
    """The 10th percentile of the samples' wall time (their 4th field, ns), in us."""
    walls = sorted(s[3] for s in samples)
    return walls[(len(walls) - 1) // 10] / 1e3


def diff_rows(a, b):
    """(B - A, label, A, B, step) of the busiest thread's CPU us per step
    both summaries ({step: [label, crit us, ...]}) hold with the same label."""
    return [(b[j][1] - a[j][1], a[j][0], a[j][1], b[j][1], j)
            for j in a if j in b and a[j][0] == b[j][0]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="an ONNX file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--top", type=int, default=25, help="steps to print")
    p.add_argument("--json", help="write the per-step medians here (for --compare)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two --json files: B against A")
    p.add_argument("--env", metavar="NAME",
                   help="A/B in one process at --threads: B prepared with NAME=1 set")
    a = p.parse_args(argv)
    n = str(a.threads)
    if a.compare:
        sa, sb = (json.load(open(f)) for f in a.compare)
        n = max(sa, key=int)
        rows = diff_rows(sa[n], sb[n])
        print(f"{n} threads, busiest thread's CPU us: A {sum(r[2] for r in rows):.0f}, "
              f"B {sum(r[3] for r in rows):.0f}")
        for d, label, x, y, _ in sorted(rows, key=lambda r: -abs(r[0]))[:a.top]:
            print(f"  {label[:44]:44s} A {x:8.1f}  B {y:8.1f}  {d:+8.1f}")
        return 0
    if not a.model or a.threads < 2:
        p.error("a model and --threads of 2 or more (or --compare A B)")
    from leanconv import _core
    if _core.parallel_backend() != "pool":
        print(f"this build runs loops on {_core.parallel_backend()}: no pool to trace")
        return 1
    if a.env:
        s = summary(profile(a.model, a.threads, a.runs, a.env))
        rows = diff_rows(s["A"], s["B"])
        wall = {k: {j: v[4] for j, v in s[k].items()} for k in s}
        print(f"{a.model}: load average {os.getloadavg()[0]:.2f}; {n} threads, B: {a.env}=1; "
              f"busiest thread's CPU us A {sum(r[2] for r in rows):.0f}, B "
              f"{sum(r[3] for r in rows):.0f}; wall p10 us A {sum(wall['A'].values()):.0f}, "
              f"B {sum(wall['B'].values()):.0f}")
        print(f"  {'step':44s} {'A cpu':>8s} {'B cpu':>8s} {'B-A':>7s} {'A wall':>8s} {'B wall':>8s}")
        for d, label, x, y, j in sorted(rows, key=lambda r: -abs(r[0]))[:a.top]:
            print(f"  {label[:44]:44s} {x:8.1f} {y:8.1f} {d:+7.1f} {wall['A'][j]:8.1f} "
                  f"{wall['B'][j]:8.1f}")
        return 0
    s = summary(profile(a.model, a.threads, a.runs))
    s = {str(t): {str(j): v for j, v in steps.items()} for t, steps in s.items()}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(s, f)
    one, many = s["1"], s[n]
    print(f"{a.model}: load average {os.getloadavg()[0]:.2f}; busiest thread's CPU ms, "
          f"1 thread {sum(v[1] for v in one.values()) / 1e3:.2f}, {n} threads "
          f"{sum(v[1] for v in many.values()) / 1e3:.2f} (all threads "
          f"{sum(v[2] for v in many.values()) / 1e3:.2f})")
    print(f"  {'step':44s} {'1t us':>8s} {n + 't us':>8s} {'x':>5s} {'all us':>8s} {'clean':>6s}")
    lost = sorted(many, key=lambda j: -(many[j][1] - one[j][1] / a.threads))
    for j in lost[:a.top]:
        label, crit, work, clean = many[j][:4]
        print(f"  {label[:44]:44s} {one[j][1]:8.1f} {crit:8.1f} {one[j][1] / max(crit, 1e-9):5.2f} "
              f"{work:8.1f} {100 * clean:5.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
