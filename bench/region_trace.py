"""Where a model's time goes at 1 and 2 threads, per parallel loop: runs one
ONNX model through leanconv.onnx at both thread counts (interleaved, one
process), with the pool's debug trace on (_core.pool_trace), and prints per
loop kind (task function, items, threads it ran on) the median wall time of
the loop, each team slot's busy time and items, and when the worker started
after the caller published the loop.  A diagnostic, not a table in docs/:

    python bench/region_trace.py /tmp/leanconv-onnx-exports/mobilenet_v2-224-torchscript.onnx

Task functions are named from the extension's symbol table (`nm`); without
it they print as addresses."""
from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from _source_tree import use_source_tree  # noqa: E402
use_source_tree()


def task_names(core_file):
    """{address: name} of the functions in the loaded extension (Linux)."""
    base = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()
                if len(p) >= 6 and p[5] == core_file and p[2] == "00000000":
                    base = int(p[0].split("-")[0], 16)
                    break
        out = subprocess.run(["nm", "--defined-only", core_file], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    if base is None:
        return {}
    names = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "tT":
            names[int(p[0], 16) + base] = p[2]
    return names


def trace_runs(rep, feeds, rounds, pause=0.005):
    """Runs rep `rounds` times with the trace on, each `pause` seconds after
    the last (past the pool's spin: its worker sleeps and is woken), or with
    pause 0 right after an untimed run (the worker awake, as in a benchmark's
    back-to-back runs): (run seconds, records, each with its run's index
    under "run")."""
    from leanconv import _core
    times, records = [], []
    try:
        for k in range(rounds):
            if pause > 0:
                time.sleep(pause)
            else:
                rep.run(feeds)
            _core.pool_trace(10_000)   # a fresh trace per run
            t0 = time.perf_counter()
            rep.run(feeds)
            times.append(time.perf_counter() - t0)
            records += [dict(r, run=k) for r in _core.pool_trace()]
        return times, records
    finally:
        _core.pool_trace(0)


def summary(records, names, rounds):
    """Rows per (task, items, team): per-run total, median loop us, slots' busy us and items."""
    groups = collections.defaultdict(list)
    for r in records:
        groups[(names.get(r["fn"], hex(r["fn"])), r["count"], r["team"])].append(r)
    rows = []
    for (name, count, team), rs in groups.items():
        def med(f, rs=rs):
            return statistics.median(f(r) for r in rs)
        wall = med(lambda r: (r["end_ns"] - r["start_ns"]) / 1e3)
        started = [(r["first_ns"][1] - r["start_ns"]) / 1e3 for r in rs if r["items"][1] > 0]
        rows.append({"name": name, "count": count, "team": team, "per_run": len(rs) / rounds,
                     "wall_us": wall, "busy_us": [med(lambda r, s=s: r["busy_ns"][s] / 1e3)
                                                 for s in range(min(team, 2))],
                     "items": [med(lambda r, s=s: r["items"][s]) for s in range(min(team, 2))],
                     "worker_joined": len(started) / len(rs),
                     "worker_start_us": statistics.median(started) if started else None})
    rows.sort(key=lambda r: -r["wall_us"] * r["per_run"])
    return rows


def loss_split(records):
    """Per run (medians over the runs), where the time inside the loops goes:
    wall (the caller's time in loops), hand-over (a loop's wall past its
    busiest slot's time in items: publishing, the worker's join, the caller's
    wait at the end), imbalance (the busiest slot past the slots' mean), and
    busy (every slot's time in items, summed: against the 1-thread figure,
    what the split adds to the work itself -- data another core wrote, weights
    each thread streams, smaller blocks), and cpu (every slot's thread CPU
    time in items, summed: busy without the time the OS ran other work on
    those CPUs, so on a shared machine the split's own cost; 0 from a trace
    without it).  None without records."""
    runs = collections.defaultdict(list)
    for q in records:
        runs[q["run"]].append(q)
    sums = {k: [] for k in ("wall", "handover", "imbalance", "busy", "cpu")}
    for run in runs.values():
        acc = dict.fromkeys(sums, 0.0)
        for q in run:
            slots = [q["busy_ns"][s] for s in range(min(q["team"], len(q["busy_ns"])))]
            wall = q["end_ns"] - q["start_ns"]
            acc["wall"] += wall
            acc["handover"] += wall - max(slots)
            acc["imbalance"] += max(slots) - sum(slots) / q["team"]
            acc["busy"] += sum(slots)
            acc["cpu"] += sum(q.get("cpu_ns", [0] * len(slots))[:len(slots)])
        for k, v in acc.items():
            sums[k].append(v / 1e3)
    return {k: statistics.median(v) for k, v in sums.items()} if runs else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an ONNX file")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--top", type=int, default=25, help="loop kinds to print per thread count")
    p.add_argument("--pause-ms", type=float, default=5.0,
                   help="pause before each traced run (0: an untimed run instead, workers awake)")
    a = p.parse_args(argv)
    import os

    import onnx

    import leanconv.onnx as lco
    from leanconv import _core
    from leanconv.onnx.bench import random_inputs
    if _core.parallel_backend() != "pool":
        print(f"this build runs loops on {_core.parallel_backend()}: no pool to trace")
        return 1
    feeds = random_inputs(onnx.load(a.model))
    reps = {t: lco.prepare(a.model, threads=t) for t in (1, 2)}
    for rep in reps.values():
        for _ in range(3):
            rep.run(feeds)
    names = task_names(_core.__file__)
    print(f"{a.model}: load average {os.getloadavg()[0]:.2f}")
    busy_1t = None
    for t, rep in reps.items():
        times, records = trace_runs(rep, feeds, a.rounds, a.pause_ms / 1e3)
        rows = summary(records, names, a.rounds)
        print(f"\n{t} thread(s): run median {1e3 * statistics.median(times):.2f} ms, "
              f"{len(records) / a.rounds:.0f} loops per run, "
              f"{sum(r['per_run'] * r['wall_us'] for r in rows) / 1e3:.2f} ms inside them")
        split = loss_split(records)
        if split:
            if t == 1:
                busy_1t, cpu_1t = split["busy"], split["cpu"]
            more = "" if t == 1 or busy_1t is None else \
                f", {split['busy'] - busy_1t:+.0f} us of work against 1 thread " \
                f"({split['cpu'] - cpu_1t:+.0f} us of CPU time)"
            print(f"  per run: {split['wall']:.0f} us in loops, hand-over {split['handover']:.0f} us, "
                  f"imbalance {split['imbalance']:.0f} us, busy {split['busy']:.0f} us, "
                  f"CPU {split['cpu']:.0f} us (all slots){more}")
        print("  task                          items team  x/run  loop us   busy us (slots)   "
              "items (slots)  worker joined / started us")
        for r in rows[:a.top]:
            busy = "/".join(f"{b:.1f}" for b in r["busy_us"])
            items = "/".join(f"{i:.0f}" for i in r["items"])
            joined = ("" if r["team"] < 2 else f"{100 * r['worker_joined']:.0f}% / "
                      + ("-" if r["worker_start_us"] is None else f"{r['worker_start_us']:.1f}"))
            print(f"  {r['name'][:28]:28s} {r['count']:6d} {r['team']:4d} {r['per_run']:6.1f} "
                  f"{r['wall_us']:8.1f}   {busy:16s} {items:14s} {joined}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
