"""What each step of a model costs its threads, in thread CPU time: runs one
ONNX model through leanconv.onnx at 1 and --threads threads (interleaved, one
process) with the pool's debug trace on, and per step prints the median CPU
time of its busiest thread (each parallel loop's busiest slot, summed over the
step's loops) and of all its threads.  A diagnostic, not a table in docs/:

    python bench/step_cpu.py /tmp/oxcache/resnet50-128-torchscript.onnx [--json new.json]
    python bench/step_cpu.py --compare base.json new.json   (two builds, run one after the other)

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


def profile(path, threads, runs):
    """{threads: {step index: [label, [(crit, work, clean)]]}} over `runs` traced runs."""
    import onnx

    import leanconv.onnx as lco
    from leanconv import _core
    from leanconv.onnx.bench import random_inputs
    from onnx_profile import conv_shape
    model = onnx.load(path)
    feeds = random_inputs(model)
    reps = {t: lco.prepare(model, threads=t) for t in (1, threads)}
    bound = {t: r.feeds(feeds) for t, r in reps.items()}
    data = {t: {} for t in reps}
    for _ in range(runs):
        for t, rep in reps.items():
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
            for j, crit, work, clean in step_costs(spans, recs):
                label = conv_shape(steps[j][0]) or steps[j][0].label()
                data[t].setdefault(j, [label, []])[1].append((crit, work, clean))
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
                         sum(s[2] for s in samples) / len(samples)]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="an ONNX file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--top", type=int, default=25, help="steps to print")
    p.add_argument("--json", help="write the per-step medians here (for --compare)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two --json files: B against A")
    a = p.parse_args(argv)
    n = str(a.threads)
    if a.compare:
        sa, sb = (json.load(open(f)) for f in a.compare)
        n = max(sa, key=int)
        rows = [(sb[n][j][1] - sa[n][j][1], sa[n][j][0], sa[n][j][1], sb[n][j][1])
                for j in sa[n] if j in sb[n] and sa[n][j][0] == sb[n][j][0]]
        print(f"{n} threads, busiest thread's CPU us: A {sum(r[2] for r in rows):.0f}, "
              f"B {sum(r[3] for r in rows):.0f}")
        for d, label, x, y in sorted(rows, key=lambda r: -abs(r[0]))[:a.top]:
            print(f"  {label[:44]:44s} A {x:8.1f}  B {y:8.1f}  {d:+8.1f}")
        return 0
    if not a.model or a.threads < 2:
        p.error("a model and --threads of 2 or more (or --compare A B)")
    from leanconv import _core
    if _core.parallel_backend() != "pool":
        print(f"this build runs loops on {_core.parallel_backend()}: no pool to trace")
        return 1
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
        label, crit, work, clean = many[j]
        print(f"  {label[:44]:44s} {one[j][1]:8.1f} {crit:8.1f} {one[j][1] / max(crit, 1e-9):5.2f} "
              f"{work:8.1f} {100 * clean:5.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
