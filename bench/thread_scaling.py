"""Thread scaling: 1 vs N threads on every ResNet-18 convolution shape (stem,
3x3, 3x3/2, 1x1/2 downsample) and the VGG-16 224x224 layer, and PyTorch /
ONNX Runtime at N threads:

  A. leanconv, 1 thread     B. leanconv, N threads     peers at N threads
     -- each in its own process, in turns (bench/_rotation.py)
  C. leanconv with the peers loaded and interleaved in the same process, N threads
     (one `leanconv bench --compare` process)

    python bench/thread_scaling.py [--threads 2] [--min-time 0.5] [--out docs/threading.md]

(writes the "thread-scaling" section of the file).

Why separate processes: each thread pool (ours, torch's, ONNX Runtime's) is
measured without the others' workers spinning or sleeping around it; C shows
what a process that runs all three sees.  For each layer the processes take
turns: each turn waits until the other processes have used no CPU for 5 ms,
makes one untimed call, then calls back to back for ~10 ms, each timed;
turns disturbed by other processes on the machine are taken again.  Figures
are the median call, once each process has run the layer --min-time s and 7
turns."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _source_tree import child_env, use_source_tree  # noqa: E402
use_source_tree(1)
import _rotation  # noqa: E402
from doc_section import host_line, write_section  # noqa: E402

SAMPLE_S = 0.01     # one turn's sample: calls back to back for about this long
MIN_TURNS = 7

LAYERS = [
    "C=3,H=224,M=64,k=7,stride=2,pad=3",     # resnet18 stem
    "C=64,H=56,M=64,k=3,pad=1",              # layer1
    "C=64,H=56,M=128,k=3,stride=2,pad=1",    # layer2's first conv
    "C=64,H=56,M=128,k=1,stride=2",          # layer2's downsample
    "C=128,H=28,M=128,k=3,pad=1",            # layer2
    "C=128,H=28,M=256,k=3,stride=2,pad=1",   # layer3's first conv
    "C=128,H=28,M=256,k=1,stride=2",         # layer3's downsample
    "C=256,H=14,M=256,k=3,pad=1",            # layer3
    "C=256,H=14,M=512,k=3,stride=2,pad=1",   # layer4's first conv
    "C=256,H=14,M=512,k=1,stride=2",         # layer4's downsample
    "C=512,H=7,M=512,k=3,pad=1",             # layer4
    "C=64,H=224,M=64,k=3,pad=1",             # vgg16 conv1_2
]


def _layer_data(spec):
    import numpy as np
    from leanconv.cli.args import parse_layer
    L = parse_layer(spec)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(L.x_shape, dtype=np.float32)
    w = rng.standard_normal(L.w_shape, dtype=np.float32) / np.float32(
        (L.C // L.groups * L.kH * L.kW) ** 0.5)
    b = rng.standard_normal(L.M, dtype=np.float32)
    return L, x, w, b


def serve(engine, threads):
    """One engine at one thread count in this process: builds every layer,
    answers 'info' with {layer: algorithm} (leanconv) and 'I' with one turn
    of layer I: one untimed call, then calls back to back for about SAMPLE_S,
    the seconds of each as a JSON list."""
    import numpy as np
    import leanconv as lc
    from leanconv.cli.peers import load_peers
    fns, algos = [], {}
    peers = None if engine == "leanconv" else load_peers([engine], threads)[0]
    if peers == []:
        raise SystemExit(f"{engine} is not available")
    for spec in LAYERS:
        L, x, w, b = _layer_data(spec)
        if engine == "leanconv":
            plan = lc.Conv2d(w, b, algorithm="auto", stride=L.stride, padding=L.pad,
                             dilation=L.dilation, groups=L.groups, threads=threads,
                             input_shape=x.shape)
            y = np.empty(plan.output_shape(x.shape), np.float32)
            fns.append(lambda plan=plan, x=x, y=y: plan(x, out=y, threads=threads))
            algos[spec] = plan.algorithm
        else:
            fns.append(peers[0].prepare(L, x, w, b))
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "info":
            print(json.dumps(algos), flush=True)
            continue
        i = int(line)
        print(json.dumps(_rotation.timed_runs(fns[i], 1 << 30, 1, SAMPLE_S)), flush=True)


def rotated(threads, min_time, peers):
    """{engine column: {layer: median ms}}, {layer: algorithm}, {column:
    share of turns redone}: leanconv at 1 and N threads and each peer at N,
    each a process of its own, in turns per layer."""
    cols = {"one": ("leanconv", 1), "many": ("leanconv", threads)}
    cols.update({p: (p, threads) for p in peers})
    procs = {}
    try:
        for col, (engine, n) in cols.items():
            p = subprocess.Popen([sys.executable, __file__, "--serve", engine, str(n)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                p.wait()
                if engine == "leanconv":
                    raise RuntimeError("the leanconv process did not start")
                continue      # a peer that is not installed: no column
            procs[col] = p

        def ask(p, line):
            p.stdin.write(f"{line}\n")
            p.stdin.flush()
            return json.loads(p.stdout.readline())
        algos = ask(procs["many"], "info")
        out = {col: {} for col in procs}
        rots = []
        for i, spec in enumerate(LAYERS):
            asks = {col: (lambda p=p, i=i: ask(p, i)) for col, p in procs.items()}
            times, rot = _rotation.rotate(asks, {c: p.pid for c, p in procs.items()},
                                          min_time, MIN_TURNS)
            rots.append(rot)
            for col, ts in times.items():
                out[col][spec] = statistics.median(ts) * 1e3
            print(spec, {c: round(v[spec], 3) for c, v in out.items()},
                  f"redone {[round(rot.redone_share(c), 1) for c in procs]}", file=sys.stderr,
                  flush=True)
        redone = {col: statistics.mean(r.redone_share(col) for r in rots) for col in procs}
        return out, algos, redone
    finally:
        for p in procs.values():
            p.stdin.close()
            p.wait()


def run(threads, min_time, compare=None):
    """Rows by shape and metadata of one `leanconv bench` process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        argv = [sys.executable, "-m", "leanconv", "bench", "--threads", str(threads),
                "--min-time", str(min_time), "--quiet", "--json", out]
        if compare:
            argv += ["--compare", compare]
        for spec in LAYERS:
            argv += ["--layer", spec]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=child_env())
        with open(out) as f:
            result = json.load(f)
    rows = {r["shape"]: r for r in result["rows"] if r["kind"] == "layer"}
    return rows, result["metadata"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        return serve(argv[1], int(argv[2]))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--compare", default="torch,onnxruntime")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    a = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    peer_names = [p for p in a.compare.split(",") if p]
    got, algos, redone = rotated(a.threads, a.min_time, peer_names)
    mixed, mixed_meta = run(a.threads, a.min_time, a.compare)
    meta = mixed_meta
    peers = [p for p in peer_names if p in got]
    n = a.threads
    head = ["layer", "algorithm", "1 thread ms", f"{n} threads ms", "speed-up"] + \
        [f"{p} {n}t ms (peer/ours)" for p in peers] + [f"ours {n}t, peers in process ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    speedups, ratios = [], {p: [] for p in peers}
    for spec in LAYERS:
        one, many = got["one"][spec], got["many"][spec]
        rm = mixed.get(_layer_data(spec)[0].shape_text, {})
        s = one / many
        speedups.append(s)
        cells = [_layer_data(spec)[0].shape_text, algos[spec], f"{one:.3f}", f"{many:.3f}", f"{s:.2f}x"]
        for peer in peers:
            ms = got[peer][spec]
            ratios[peer].append(ms / many)
            cells.append(f"{ms:.3f} ({ms / many:.2f}x)")
        cells.append(f"{rm['plan_ms']:.3f}" if "plan_ms" in rm else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    summary = [f"geometric-mean speed-up {statistics.geometric_mean(speedups):.2f}x, "
               f"lowest {min(speedups):.2f}x"]
    summary += [f"{p} at {n} threads / ours: geomean {statistics.geometric_mean(r):.2f}x"
                for p, r in ratios.items() if r]
    lines.append("; ".join(summary) + f"; isa {meta['isa']}; cpu {meta['cpu']['name']}; "
                 "turns taken again because other processes disturbed them: " +
                 ", ".join(f"{c} {100 * v:.0f}%" for c, v in redone.items()) +
                 " (0% on a quiet machine).")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"Command: `python bench/thread_scaling.py --threads {n} --min-time {a.min_time}` "
                 f"({when}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after).")
    text = "\n".join(lines)
    print(text)
    if a.out:
        method = (__doc__ or "").split("\n\n", 1)[1]
        write_section(a.out, "thread-scaling", "## Single layers\n\n" + method + "\n\n" + text +
                      "\n\n" + host_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
