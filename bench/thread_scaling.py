"""Thread scaling: 1 vs 2 (or --threads N) threads on ResNet-18's 3x3 layers
and the VGG-16 224x224 layer, with PyTorch and ONNX Runtime at the same thread
counts, all through the `leanconv bench` machinery (medians, interleaved runs).

    python bench/thread_scaling.py [--threads 2] [--min-time 0.5] [--out docs/threading.md]

Writes a markdown table: per layer our median ms at 1 and N threads, the
speed-up, and each peer's time / ours at N threads (> 1 = leanconv faster)."""
from __future__ import annotations

import argparse
import statistics
import sys

from leanconv.cli import bench
from leanconv.cli.args import build_parser

LAYERS = [
    "C=64,H=56,M=64,k=3,pad=1",      # resnet18 layer1
    "C=128,H=28,M=128,k=3,pad=1",    # layer2
    "C=256,H=14,M=256,k=3,pad=1",    # layer3
    "C=512,H=7,M=512,k=3,pad=1",     # layer4
    "C=64,H=224,M=64,k=3,pad=1",     # vgg16 conv1_2
]


def run(threads, min_time, compare):
    argv = ["bench", "--threads", str(threads), "--min-time", str(min_time), "--quiet",
            "--compare", compare]
    for spec in LAYERS:
        argv += ["--layer", spec]
    opts = build_parser().parse_args(argv)
    opts.argv = argv
    result = bench.run(opts)
    return {r["shape"]: r for r in result["rows"] if r["kind"] == "layer"}, result["metadata"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--compare", default="torch,onnxruntime")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    a = p.parse_args(argv)
    one, _ = run(1, a.min_time, a.compare)
    many, meta = run(a.threads, a.min_time, a.compare)
    peers = [n for n, s in meta["peers"].items() if s["status"] == "ok"]
    head = ["layer", "algorithm", "1 thread ms", f"{a.threads} threads ms", "speed-up"] + \
        [f"{p} {a.threads}t ms (vs)" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    speedups = []
    for shape, r1 in one.items():
        rn = many[shape]
        s = r1["plan_ms"] / rn["plan_ms"]
        speedups.append(s)
        cells = [shape, rn["algorithm"], f"{r1['plan_ms']:.3f}", f"{rn['plan_ms']:.3f}", f"{s:.2f}x"]
        for peer in peers:
            ms, vs = rn.get(f"{peer}_ms"), rn.get(f"vs_{peer}")
            cells.append("n/a" if ms is None else f"{ms:.3f} ({vs:.2f}x)")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"geometric-mean speed-up {statistics.geometric_mean(speedups):.2f}x; "
                 f"isa {meta['isa']}; cpu {meta['cpu']['name']}; command: "
                 f"python bench/thread_scaling.py --threads {a.threads} --min-time {a.min_time}")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(f"# Thread scaling\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
