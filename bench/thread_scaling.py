"""Thread scaling: 1 vs N threads on every ResNet-18 convolution shape (stem,
3x3, 3x3/2, 1x1/2 downsample) and the VGG-16 224x224 layer, and PyTorch /
ONNX Runtime at N threads, through `leanconv bench` (medians of interleaved
runs), each configuration in its own process:

  A. leanconv alone, 1 thread        B. leanconv alone, N threads
  C. leanconv with the peers loaded and interleaved in the same process, N threads

    python bench/thread_scaling.py [--threads 2] [--min-time 0.5] [--out docs/threading.md]

(writes the "thread-scaling" section of the file).

Why separate processes: each thread pool (ours, torch's, ONNX Runtime's) is
measured without the others' workers spinning or sleeping around it; C shows
what a process that runs all three sees.  On this shared 2-core VM a run can
be disturbed by other tenants: repeat it, and read a run whose columns B and C
agree."""
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
from doc_section import write_section  # noqa: E402

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
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            result = json.load(f)
    rows = {r["shape"]: r for r in result["rows"] if r["kind"] == "layer"}
    return rows, result["metadata"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--compare", default="torch,onnxruntime")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    a = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    one, _ = run(1, a.min_time)
    many, meta = run(a.threads, a.min_time)
    mixed, mixed_meta = run(a.threads, a.min_time, a.compare)
    peers = [n for n, s in mixed_meta["peers"].items() if s["status"] == "ok"]
    n = a.threads
    head = ["layer", "algorithm", "1 thread ms", f"{n} threads ms", "speed-up"] + \
        [f"{p} {n}t ms (peer/ours)" for p in peers] + [f"ours {n}t, peers in process ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    speedups, ratios = [], {p: [] for p in peers}
    for shape, r1 in one.items():
        rn, rm = many[shape], mixed[shape]
        s = r1["plan_ms"] / rn["plan_ms"]
        speedups.append(s)
        cells = [shape, rn["algorithm"], f"{r1['plan_ms']:.3f}", f"{rn['plan_ms']:.3f}", f"{s:.2f}x"]
        for peer in peers:
            ms = rm.get(f"{peer}_ms")
            if ms is None:
                cells.append("n/a")
            else:
                ratios[peer].append(ms / rn["plan_ms"])
                cells.append(f"{ms:.3f} ({ms / rn['plan_ms']:.2f}x)")
        cells.append(f"{rm['plan_ms']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    summary = [f"geometric-mean speed-up {statistics.geometric_mean(speedups):.2f}x, "
               f"lowest {min(speedups):.2f}x"]
    summary += [f"{p} at {n} threads / ours: geomean {statistics.geometric_mean(r):.2f}x"
                for p, r in ratios.items() if r]
    lines.append("; ".join(summary) + f"; isa {meta['isa']}; cpu {meta['cpu']['name']}.")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"Command: `python bench/thread_scaling.py --threads {n} --min-time {a.min_time}` "
                 f"({when}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after).")
    text = "\n".join(lines)
    print(text)
    if a.out:
        method = (__doc__ or "").split("\n\n", 1)[1]
        write_section(a.out, "thread-scaling", "## Single layers\n\n" + method + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
