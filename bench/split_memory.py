"""Does `leanconv split`'s device_peak_bytes match what device.onnx really
takes?  For ResNet-18, MobileNetV2 and GoogLeNet (torchvision, random
weights) it splits under several device-memory budgets, then runs each
DIR/device.onnx alone through leanconv.onnx in a fresh process, at glibc's
default allocator settings, and measures its resident-memory growth:

  baseline   VmRSS after importing numpy, onnx and leanconv.onnx, a warm-up
             (a one-node model loaded, prepared and run, a random draw, all of
             leanconv's compiled code paged in: code is not the model's memory)
  growth     VmHWM minus the baseline, from creating the input (the device
             holds it: the model counts it) to the end of a run, the
             high-water mark reset (/proc/self/clear_refs) after the model is
             loaded and prepared and the ONNX protobuf freed (gc + malloc_trim),
             so the loader's transient copy of the weights is not charged to
             the run: the larger of the first run and the steady state (the
             least of three later runs), what the split's memory model describes

and writes the table into docs/split.md (between its memory markers).
Linux only (procfs).  About 2 minutes on 2 cores.

    python bench/split_memory.py [--size 224] [--threads 1]"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
if not any((Path(p or ".") / "leanconv").is_dir() for p in sys.path[1:]):
    from _source_tree import use_source_tree
    use_source_tree(1)
from doc_section import write_section  # noqa: E402  (same folder)

FRACTIONS = (1.0, 0.5, 0.25, 0.12)

CHILD = r"""
import ctypes, gc, json, os, sys, tempfile
import numpy as np
import onnx
from onnx import helper
import leanconv.onnx as lco
from leanconv._heap import return_freed_memory
from leanconv.tools.executor import PER_LAYER_BUDGET, warm_up

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

def settle():
    gc.collect()
    return_freed_memory()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # reset VmHWM to the current RSS

path, threads, shape = sys.argv[1], int(sys.argv[2]), [int(d) for d in sys.argv[3].split("x")]
# Code and import-on-first-use are not the model's memory: the profile's own
# warm-up (a one-node model prepared and run), an ONNX file loaded, a random
# draw, and all of leanconv's compiled code paged in before the baseline (a run
# touches the kernels it uses: up to ~0.7 MB of file-backed pages, which VmRSS
# counts)
warm_up()
with tempfile.TemporaryDirectory() as tmp:
    onnx.save(helper.make_model(helper.make_graph([], "empty", [], [])),
              os.path.join(tmp, "empty.onnx"))
    onnx.load(os.path.join(tmp, "empty.onnx"))
np.random.default_rng(0).standard_normal(shape)
with open("/proc/self/maps") as maps:
    for line in maps:
        f = line.split()
        if len(f) >= 6 and "leanconv/_core" in f[5] and f[1].startswith("r"):
            lo, hi = (int(v, 16) for v in f[0].split("-"))
            ctypes.string_at(lo, hi - lo)
settle()
baseline = status("VmRSS")
# the input lives on the device: the model counts it, so the growth does
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
model = onnx.load(path)
rep = lco.prepare(model, threads=threads, memory_budget=PER_LAYER_BUDGET)
name = rep.input_names[0]
del model
settle()   # the loader's transient copy of the weights is not charged to the runs
runs = []
for _ in range(4):   # the first run, then steady state
    rep.run({name: x})
    runs.append(status("VmHWM") - baseline)
    settle()
print(json.dumps({"runs": runs}))
"""


def child_env(**extra):
    """The environment for a child process that imports the same leanconv as
    this one (the source tree's in-place build, or the installed package)."""
    import leanconv
    here = str(Path(leanconv.__file__).resolve().parent.parent)
    path = [here] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), **extra)


def child_growth(device_onnx, threads, shape):
    """RSS growth in bytes of a fresh process running device_onnx four times,
    at glibc's default allocator settings: the larger of the first run and
    the steady state, the least of the later runs (memory noise -- a page
    touched for reasons of its own -- only ever adds, so the least reading
    is the one that isolates the run)."""
    env = child_env(OPENBLAS_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(device_onnx), str(threads),
                           "x".join(map(str, shape))], capture_output=True, text=True,
                          env=env, check=True)
    runs = json.loads(proc.stdout)["runs"]
    return max(runs[0], min(runs[1:]))


def split(model, budget, out, threads, uplink="1Mbit/s", speedup="1"):
    """leanconv split with a slow link and an equal server: the cut with the
    fewest bytes that fits the budget."""
    js = Path(out) / "split.json"
    cmd = [sys.executable, "-m", "leanconv", "split", str(model), "--threads", str(threads),
           "--device-memory", str(budget), "--uplink", uplink, "--rtt", "0ms",
           "--server-speedup", speedup, "--out", str(out), "--json", str(js),
           "--min-runs", "3", "--min-time", "0.05"]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=child_env())
    if proc.returncode != 0:
        return None, proc.stderr.strip()
    return json.loads(js.read_text()), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs" / "split.md"),
                    help="the document whose memory section is replaced")
    args = ap.parse_args()
    import torchvision_onnx
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("resnet18", "mobilenet_v2", "googlenet"):
            model = torchvision_onnx.export(name, Path(tmp) / f"{name}.onnx", args.size)
            full, _ = split(model, "64GiB", Path(tmp) / "full", args.threads)
            whole = full["device_peak_bytes"]
            for fraction in FRACTIONS:
                out = Path(tmp) / f"{name}_{fraction}"
                budget = int(whole * fraction)
                # the whole model: that split itself (another process's profile may
                # measure the executor's objects a few KiB apart: see tools/executor.py)
                r, err = (full, None) if fraction == 1.0 else \
                    split(model, budget, out, args.threads)
                if r is None:
                    rows.append((name, budget, None, None, None, err))
                    continue
                if "device" not in r["files"]:
                    rows.append((name, budget, 0, r["device_peak_bytes"], None,
                                 "all on the server: nothing runs on the device"))
                    continue
                shape = [1, 3, args.size, args.size]
                growth = child_growth(r["files"]["device"], args.threads, shape)
                rows.append((name, budget, len(r["device_nodes"]), r["device_peak_bytes"],
                             growth, ", ".join(r["cut"])[:60] or "(all on the device)"))
                print(rows[-1], file=sys.stderr)
    write(rows, args)


def write(rows, args):
    mib = 2.0 ** 20
    lines = [
             f"Generated by `python bench/split_memory.py --size {args.size} --threads "
             f"{args.threads}` (input 1x3x{args.size}x{args.size}; "
             f"`leanconv split --uplink 1Mbit/s --rtt 0ms --server-speedup 1`, so the cut is "
             f"the smallest transfer that fits the budget). `model` = the split's "
             f"`device_peak_bytes`; `RSS growth` = peak resident memory of a fresh process "
             f"running device.onnx four times through leanconv.onnx (the larger of the first run "
             f"and the steady state), "
             f"over its baseline after imports and a warm-up (see the script's docstring), "
             f"with glibc's default allocator settings.", "",
             f"Load average while it ran: {os.getloadavg()[0]:.2f} (timings do not matter "
             f"here; memory does not depend on the load).", "",
             "| model | budget MiB | device nodes | model MiB | RSS growth MiB | "
             "model / RSS | cut |",
             "|---|---|---|---|---|---|---|"]
    for name, budget, n, peak, growth, cut in rows:
        if growth is None:
            lines.append(f"| {name} | {budget / mib:.1f} | {n if n is not None else '-'} | "
                         f"{'-' if peak is None else f'{peak / mib:.2f}'} | - | - | {cut} |")
            continue
        lines.append(f"| {name} | {budget / mib:.1f} | {n} | {peak / mib:.2f} | "
                     f"{growth / mib:.2f} | {peak / growth:.3f} | {cut} |")
    lines += [""]
    write_section(args.out, "split-memory", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
