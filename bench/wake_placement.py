"""Calls after a pause: where the woken worker runs, and what it costs.

    python bench/wake_placement.py [--samples 40] [--out docs/threading.md]

writes the "wake-placement" section of docs/threading.md.

A caller that runs a layer or a model now and then (a camera frame every
33 ms, a benchmark that lets every pool go quiet between turns) finds the
pool's worker asleep: its spin after the last region (300 us) is long over.
On the 2-vCPU KVM guest this was written on, the wake-up then put the worker
on the caller's CPU and left it there, so such a call ran on one core.  The
pool now keeps the caller's CPU out of a sleeping worker's affinity while it
wakes it, and moves a worker that shares the caller's CPU or misses its
regions (kernels/threadpool.c: lc_pool_wake_away, lc_pool_spread);
LEANCONV_POOL_SPREAD=0 turns both off.

Workloads: ResNet-18's 3x3 64@56 layer (Winograd F4, 2 regions a call) and
four MobileNetV2-style blocks at 56x56 (1x1 24>144 + ReLU6, depthwise 3x3 144
+ ReLU6, 1x1 144>24: 12 short regions a call).  For each pause (none, 1 ms,
20 ms) a sample is: the pause, one call (the *first* call after the pause,
timed), then one more call right after (the *next* call, timed: what a
benchmark that makes one warm-up call measures).  Each configuration (spread
on, off) runs in its own process; the two alternate, twice, and each cell is
the median of all its samples.  "worker absent" is the share of the 2-thread
calls' regions the worker took no item of or ran on the caller's CPU
(_core.pool_trace)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from doc_section import publish  # noqa: E402

PAUSES_MS = (0, 1, 20)
WORKLOADS = ("r18 3x3 64@56 (F4)", "4 MobileNetV2 blocks @56")
CONFIGS = [("spread on (default)", {}), ("spread off (LEANCONV_POOL_SPREAD=0)",
                                         {"LEANCONV_POOL_SPREAD": "0"})]


def _workloads():
    import numpy as np
    import leanconv as lc
    rng = np.random.default_rng(0)

    def weights(*shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) / fan_in ** 0.5).astype(np.float32)

    x64 = rng.standard_normal((1, 64, 56, 56), dtype=np.float32)
    layer = lc.Conv2d(weights(64, 64, 3, 3), padding=1, algorithm="winograd_f4")

    x24 = rng.standard_normal((1, 24, 56, 56), dtype=np.float32)
    blocks = [(lc.Conv2d(weights(144, 24, 1, 1), algorithm="auto", activation="relu6"),
               lc.Conv2d(weights(144, 1, 3, 3), padding=1, groups=144, algorithm="auto",
                         activation="relu6"),
               lc.Conv2d(weights(24, 144, 1, 1), algorithm="auto")) for _ in range(4)]

    def mbv2():
        t = x24
        for expand, dw, project in blocks:
            t = project(dw(expand(t)))
        return t

    return dict(zip(WORKLOADS, (lambda: layer(x64), mbv2)))


def _absent(recs):
    """Share of 2-thread regions the worker took no item of or ran on the caller's CPU."""
    two = [r for r in recs if r["team"] >= 2]
    if not two:
        return None
    bad = sum(1 for r in two if r["items"][1] == 0 or r["cpu"][1] == r["cpu"][0])
    return bad / len(two)


def measure(samples):
    from _source_tree import use_source_tree
    use_source_tree()
    import leanconv as lc
    from leanconv import _core
    out = {}
    for name, call in _workloads().items():
        for threads in (1, 2):
            lc.set_num_threads(threads)
            for _ in range(5):
                call()
            for pause in PAUSES_MS:
                first, nxt, absent = [], [], []
                for _ in range(samples):
                    time.sleep(pause / 1e3)
                    if threads == 2:
                        _core.pool_trace(4096)
                    t0 = time.perf_counter()
                    call()
                    t1 = time.perf_counter()
                    call()
                    t2 = time.perf_counter()
                    first.append((t1 - t0) * 1e3)
                    nxt.append((t2 - t1) * 1e3)
                    if threads == 2:
                        a = _absent(_core.pool_trace())
                        if a is not None:
                            absent.append(a)
                out[f"{name}|{pause}|{threads}"] = {"first": first, "next": nxt, "absent": absent}
    _core.pool_trace(0)
    print(json.dumps(out))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        return measure(int(argv[1]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--out", default=str(ROOT / "docs" / "threading.md"))
    a = p.parse_args(argv)
    from _source_tree import use_source_tree
    use_source_tree()
    from leanconv._wisdom import cpu_model
    cpu = cpu_model()
    load_before = os.getloadavg()[0]
    got = {label: {} for label, _ in CONFIGS}
    for _ in range(2):
        for label, extra in CONFIGS:
            env = {k: v for k, v in os.environ.items() if k != "LEANCONV_POOL_SPREAD"}
            env.update(extra)
            r = subprocess.run([sys.executable, __file__, "--measure", str(a.samples)],
                               capture_output=True, text=True, env=env, check=True)
            for key, d in json.loads(r.stdout).items():
                cell = got[label].setdefault(key, {"first": [], "next": [], "absent": []})
                for k in cell:
                    cell[k] += d[k]
    med = statistics.median
    lines = ["## Calls after a pause: where the woken worker runs", "",
             f"Generated by `python bench/wake_placement.py --samples {a.samples}` on "
             f"{cpu or 'this CPU'}; load average {load_before:.2f} before, "
             f"{os.getloadavg()[0]:.2f} after. "
             + " ".join((__doc__ or "").split("\n\n")[3].split()) + " "
             + " ".join((__doc__ or "").split("\n\n")[4].split()), "",
             "Milliseconds: median first call after the pause / median next call.", "",
             "| workload | pause | 1 thread | 2 threads, " + CONFIGS[0][0] + " | worker absent |"
             " 2 threads, " + CONFIGS[1][0] + " | worker absent |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in WORKLOADS:
        for pause in PAUSES_MS:
            cells = [name, f"{pause} ms"]
            one = got[CONFIGS[0][0]][f"{name}|{pause}|1"]
            cells.append(f"{med(one['first']):.3f} / {med(one['next']):.3f}")
            for label, _ in CONFIGS:
                two = got[label][f"{name}|{pause}|2"]
                cells.append(f"{med(two['first']):.3f} / {med(two['next']):.3f}")
                cells.append(f"{100 * statistics.mean(two['absent']):.0f}%" if two["absent"] else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
    publish(a.out, "wake-placement", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
