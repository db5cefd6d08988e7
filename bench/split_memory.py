"""Does `leanconv split`'s device_peak_bytes match what device.onnx really
takes?  For ResNet-18, MobileNetV2 and GoogLeNet (torchvision, random
weights) it splits under several device-memory budgets, then runs each
DIR/device.onnx alone through leanconv.onnx in a fresh process and measures
its resident-memory growth:

  baseline   VmRSS after importing numpy, onnx and leanconv.onnx and creating
             the input (the input is the device's: the model counts it)
  growth     VmHWM during a run minus the baseline, the high-water mark reset
             (/proc/self/clear_refs) after the model is loaded and prepared and
             the ONNX protobuf freed (gc + malloc_trim), so the loader's
             transient copy of the weights is not charged to the run: the
             first run (which packs the Conv weights) and the second (steady
             state, what the split's memory model describes)

and writes the table into docs/split.md (between its memory markers).
Linux only (procfs).

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

BEGIN, END = "<!-- memory:begin -->", "<!-- memory:end -->"
FRACTIONS = (1.0, 0.5, 0.25, 0.12)

CHILD = r"""
import ctypes, gc, json, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import leanconv.onnx as lco

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

def settle():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)   # glibc: hand freed heap back
    except (OSError, AttributeError):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # reset VmHWM to the current RSS

# import-on-first-use (checker, op modules, kernel code pages) is not the model's
# memory: prepare and run a one-node model before the baseline
w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
tiny = helper.make_model(helper.make_graph(
    [helper.make_node("Conv", ["a", "w"], ["b"])], "warm",
    [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 1, 2, 2])],
    [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 1, 2, 2])], [w]))
lco.prepare(tiny).run([np.ones((1, 1, 2, 2), np.float32)])

path, threads, shape = sys.argv[1], int(sys.argv[2]), [int(d) for d in sys.argv[3].split("x")]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
settle()
baseline = status("VmRSS")
model = onnx.load(path)
rep = lco.prepare(model, threads=threads)
name = rep.input_names[0]
del model
settle()
rep.run({name: x})          # the first run packs every Conv's weights
first = status("VmHWM")
settle()
rep.run({name: x})          # steady state: what a device running it again and again holds
steady = status("VmHWM")
print(json.dumps({"first": first - baseline, "steady": steady - baseline}))
"""

# glibc raises its mmap threshold to the size of the largest buffer freed so far
# (up to 32 MiB) and keeps up to twice that free at the top of its heap: a
# freed 7 MiB workspace stays resident.  With a fixed threshold every buffer
# of 64 KiB or more is its own mapping, returned when freed, and the RSS shows
# what the process holds rather than what glibc keeps for later.
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def child_growth(device_onnx, threads, shape, allocator_env=None):
    """max(first run, second run) RSS growth in bytes of a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OPENBLAS_NUM_THREADS=str(threads),
               **(allocator_env or {}))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(device_onnx), str(threads),
                           "x".join(map(str, shape))], capture_output=True, text=True,
                          env=env, check=True)
    runs = json.loads(proc.stdout)
    return max(runs["first"], runs["steady"])


def split(model, budget, out, threads, uplink="1Mbit/s", speedup="1"):
    """leanconv split with a slow link and an equal server: the cut with the
    fewest bytes that fits the budget."""
    js = Path(out) / "split.json"
    cmd = [sys.executable, "-m", "leanconv", "split", str(model), "--threads", str(threads),
           "--device-memory", str(budget), "--uplink", uplink, "--rtt", "0ms",
           "--server-speedup", speedup, "--out", str(out), "--json", str(js),
           "--min-runs", "3", "--min-time", "0.05"]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "python")))
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
                r, err = split(model, budget, out, args.threads)
                if r is None:
                    rows.append((name, budget, None, None, None, err))
                    continue
                if "device" not in r["files"]:
                    rows.append((name, budget, 0, r["device_peak_bytes"], None,
                                 "all on the server: nothing runs on the device"))
                    continue
                shape = [1, 3, args.size, args.size]
                growth = (child_growth(r["files"]["device"], args.threads, shape),
                          child_growth(r["files"]["device"], args.threads, shape, FIXED_MMAP))
                rows.append((name, budget, len(r["device_nodes"]), r["device_peak_bytes"],
                             growth, ", ".join(r["cut"])[:60] or "(all on the device)"))
                print(rows[-1], file=sys.stderr)
    write(rows, args)


def write(rows, args):
    mib = 2.0 ** 20
    lines = [BEGIN, "",
             f"Generated by `python bench/split_memory.py --size {args.size} --threads "
             f"{args.threads}` (input 1x3x{args.size}x{args.size}; "
             f"`leanconv split --uplink 1Mbit/s --rtt 0ms --server-speedup 1`, so the cut is "
             f"the smallest transfer that fits the budget). `model` = the split's "
             f"`device_peak_bytes`; `RSS growth` = peak resident memory of a fresh process "
             f"running device.onnx twice through leanconv.onnx (the larger of the two runs), "
             f"over its baseline after imports and input (see the script's docstring), with "
             f"glibc's default allocator settings and with `MALLOC_MMAP_THRESHOLD_=65536` "
             f"(every buffer of 64 KiB or more its own mapping, returned to the system when "
             f"freed: what the process holds, without the freed memory glibc keeps).", "",
             f"Load average while it ran: {os.getloadavg()[0]:.2f} (timings do not matter "
             f"here; memory does not depend on the load).", "",
             "| model | budget MiB | device nodes | model MiB | RSS growth MiB (glibc "
             "default) | RSS growth MiB (mmap threshold 64 KiB) | model / RSS (64 KiB) | cut |",
             "|---|---|---|---|---|---|---|---|"]
    for name, budget, n, peak, growth, cut in rows:
        if growth is None:
            lines.append(f"| {name} | {budget / mib:.1f} | {n if n is not None else '-'} | "
                         f"{'-' if peak is None else f'{peak / mib:.2f}'} | - | - | - | {cut} |")
            continue
        default, fixed = growth
        lines.append(f"| {name} | {budget / mib:.1f} | {n} | {peak / mib:.2f} | "
                     f"{default / mib:.2f} | {fixed / mib:.2f} | {peak / fixed:.3f} | {cut} |")
    lines += ["", END]
    doc = Path(args.out)
    text = doc.read_text()
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    doc.write_text(text[:start] + "\n".join(lines) + text[stop:])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
