"""Whole models at 1 and 2 threads: leanconv.onnx and leanconv.torch.freeze,
with onnxruntime beside them; writes the "model-threads" section of
docs/threading.md.

    python bench/model_threads.py                    # ONNX exports + zoo, freeze of ResNet-18/MobileNetV2
    python bench/model_threads.py --onnx resnet18 --no-zoo --torch ''   # one model

ONNX models: the TorchScript exports of bench/onnx_models.py (torchvision,
random weights, 128x128; ResNet-18 and MobileNetV2 also 224, VGG-11 224 only)
and the onnx package's light zoo.  Torch models: bench/torch_models.py's,
frozen with freeze's defaults, 224x224.  Every (engine, thread count) is a
process of its own (its own thread pool, nothing shared); turns rotate over
the processes of one model (bench/_rotation.py: each turn waits until the
other processes have stopped using CPU, then 1 untimed and 3 timed
back-to-back runs) until each has run --min-time s and --min-rounds turns.  Figures:
median ms and the interquartile range as % of the median; `1t/2t` = the
1-thread median over the 2-thread one (above 1: two threads faster).
`regions` and `sleeps` are leanconv's pool counters per run at 2 threads
(parallel regions; times a worker slept after its spin ran out and had to be
woken); `gaps < 256 us`: the share of gaps between one region's end and the
next one's start below 256 us (the rest are mostly the pauses between
turns).  CPU columns, from each thread's scheduler statistics, at 2 threads:
`helpers' CPU ms / run` is what every thread but the calling one used during
a run (leanconv's pool worker, and any other library's threads), `CPU ms in
pause` what the process used between its turns, while idle (the other
processes ran theirs, and the next turn waited until this had stopped):
threads still spinning after the last run (leanconv's pool spins 0.3 ms;
OpenBLAS's workers ~0.1 s after a multi-threaded call, which is why
leanconv.onnx runs NumPy's BLAS on one thread).  `turns redone`: turns run
again because other work on the machine disturbed them, per kept turn (0% on
a quiet machine)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _source_tree import use_source_tree  # noqa: E402
use_source_tree()
sys.path.insert(0, str(ROOT / "bench"))
from doc_section import host_line, write_section  # noqa: E402
import _rotation  # noqa: E402

PER_TURN, WARMUP = 3, 1   # timed and untimed runs of each turn
TORCH_SIZE = 224
SHORT_GAP_BUCKETS = 9   # the pool's log2 gap buckets below 256 us


# --- one engine at one thread count per process --------------------------------------------

def _onnx_engine(kind, path, threads):
    import onnx
    from leanconv.onnx.bench import _ort_session, random_inputs
    feeds = random_inputs(onnx.load(str(path)))
    if kind == "ort":
        sess, _ = _ort_session(Path(path).read_bytes(), threads)
        return lambda: sess.run(None, feeds)
    import leanconv.onnx as lco
    rep = lco.prepare(str(path), threads=threads)
    return lambda: rep.run(feeds)


def _freeze_engine(name, threads):
    import torch
    import torchvision_models as tv
    import leanconv.torch as lct
    torch.set_num_threads(threads)
    x = torch.randn(1, 3, TORCH_SIZE, TORCH_SIZE, generator=torch.Generator().manual_seed(1))
    frozen = lct.freeze(tv.make(name), x)

    def run():
        with torch.inference_mode():
            frozen(x)
    return run


def thread_cpu_ns():
    """CPU ns this process's threads have used so far, as [the calling
    (main) thread, leanconv's pool workers, every other thread: other
    libraries' pools, e.g. BLAS or onnxruntime]; None without Linux's
    /proc/self/task/*/schedstat."""
    import threading
    main, got = threading.get_native_id(), [0, 0, 0]
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/self/task/{t}/comm") as f:
                name = f.read().strip()
        except (OSError, ValueError, IndexError):
            continue   # a thread that ended meanwhile
        got[0 if int(t) == main else 1 if name == "leanconv-pool" else 2] += ns
    return got


def serve(kind, model, threads):
    """Reads 'n warmup' lines: runs the engine warmup times untimed and n
    times timed, prints the seconds of each,
    the pool counters' growth and the threads' CPU time (during the runs, and
    in the pause since the previous turn: what idle threads spun) as JSON;
    'ready' once warmed up."""
    from leanconv import _core
    fn = _freeze_engine(model, threads) if kind == "freeze" else _onnx_engine(kind, model, threads)
    for _ in range(3):
        fn()
    print("ready", flush=True)
    last = thread_cpu_ns()
    for line in sys.stdin:
        n, warmup = (int(v) for v in line.split())
        before_warmup = thread_cpu_ns()
        _rotation.timed_runs(fn, 0, warmup)
        _core.pool_stats(reset=True)
        before = thread_cpu_ns()
        times = _rotation.timed_runs(fn, n, 0)
        after = thread_cpu_ns()
        s = _core.pool_stats()
        hist = s["gap_hist_log2_us"]
        cpu = None if after is None else {
            "run": [b - a for a, b in zip(before, after)],
            "pause": [b - a for a, b in zip(last, before_warmup)]}
        last = after
        print(json.dumps({"times": times, "regions": s["regions"], "sleeps": s["sleeps"],
                          "gaps": sum(hist), "short_gaps": sum(hist[:SHORT_GAP_BUCKETS]),
                          "cpu": cpu}), flush=True)


# --- the parent: interleaved turns ---------------------------------------------------------

def _start(kind, model, threads):
    p = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(model), str(threads)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    if p.stdout.readline().strip() != "ready":
        p.kill()
        err = p.stderr.read().strip().splitlines()
        raise RuntimeError((err[-1] if err else "no output")[:200])
    return p


def _ask(p):
    p.stdin.write(f"{PER_TURN} {WARMUP}\n")
    p.stdin.flush()
    return json.loads(p.stdout.readline())


def measure(kind_threads, model, min_time, min_rounds):
    """{(kind, threads): {"ms", "iqr", "regions", "sleeps"}} from interleaved turns."""
    procs = {}
    try:
        for kind, threads in kind_threads:
            procs[(kind, threads)] = _start(kind, model, threads)
        got = {k: {"times": [], "regions": 0, "sleeps": 0, "gaps": 0, "short_gaps": 0,
                   "helpers_run": 0, "pause": 0, "turns": 0, "cpu": True} for k in procs}
        rot = _rotation.Rotation({k: p.pid for k, p in procs.items()})
        turns = 0
        while True:
            for k, p in procs.items():
                r = rot.turn(k, lambda p=p: _ask(p))
                g = got[k]
                g["times"] += r["times"]
                for key in ("regions", "sleeps", "gaps", "short_gaps"):
                    g[key] += r[key]
                if r["cpu"] is None:
                    g["cpu"] = False
                elif turns > 0:   # the first pause follows the warm-up, not a turn
                    g["helpers_run"] += sum(r["cpu"]["run"][1:])
                    g["pause"] += sum(r["cpu"]["pause"])
                    g["turns"] += 1
            turns += 1
            if turns >= min_rounds and all(sum(g["times"]) >= min_time for g in got.values()):
                break
    finally:
        for p in procs.values():
            p.stdin.close()
            p.wait()
    out = {}
    for k, g in got.items():
        ts = g["times"]
        med, iqr = _rotation.spread(ts)
        out[k] = {"ms": med * 1e3, "iqr": iqr, "redone": rot.redone_share(k),
                  "regions": g["regions"] / len(ts), "sleeps": g["sleeps"] / len(ts),
                  "short_gaps": 100 * g["short_gaps"] / max(1, g["gaps"]),
                  "helpers_ms": (g["helpers_run"] / 1e6 / (g["turns"] * PER_TURN)
                                 if g["cpu"] and g["turns"] else None),
                  "pause_ms": g["pause"] / 1e6 / g["turns"] if g["cpu"] and g["turns"] else None}
    return out


def fmt(r):
    return f"{r['ms']:.2f} ±{r['iqr']:.0f}%"


def _ms(v):
    return "n/a" if v is None else f"{v:.2f}"


def table(rows, with_ort):
    head = ["model", "1 thread ms", "2 threads ms", "1t/2t", "regions", "sleeps", "gaps < 256 us",
            "helpers' CPU ms / run", "CPU ms in pause"]
    if with_ort:
        head += ["onnxruntime 2t ms", "ORT 2t / ours 2t", "ORT CPU ms in pause"]
    head += ["turns redone"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in rows:
        if "error" in r:
            lines.append(f"| {label} | {r['error']} |" + " |" * (len(head) - 2))
            continue
        one, two = r[("leanconv", 1)], r[("leanconv", 2)]
        cells = [label, fmt(one), fmt(two), f"{one['ms'] / two['ms']:.2f}x",
                 f"{two['regions']:.0f}", f"{two['sleeps']:.1f}", f"{two['short_gaps']:.0f}%",
                 _ms(two["helpers_ms"]), _ms(two["pause_ms"])]
        if with_ort:
            ort = r.get(("ort", 2))
            cells += ([fmt(ort), f"{ort['ms'] / two['ms']:.2f}x", _ms(ort["pause_ms"])] if ort
                      else ["n/a"] * 3)
        redone = [v["redone"] for v in r.values()]
        cells.append(f"{100 * sum(redone) / len(redone):.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        kind, model, threads = argv[1], argv[2], int(argv[3])
        return serve(kind, model, threads)
    import onnx_exports
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", default=",".join(onnx_exports.TORCHVISION),
                   help="torchvision models to export to ONNX, comma-separated ('' for none)")
    p.add_argument("--torch", default="resnet18,mobilenet_v2",
                   help="torchvision models to freeze, comma-separated ('' for none; 'all')")
    from _model_args import add_model_args
    add_model_args(p, min_time=0.3)
    p.add_argument("--out", default=str(ROOT / "docs" / "threading.md"))
    a = p.parse_args(argv)
    zoo_only = {f"zoo {n} 224" for n in a.zoo.split(",") if n} or None  # --zoo "": all
    load_before = os.getloadavg()[0]
    onnx_rows, torch_rows = [], []
    from onnx_models import model_list
    for label, get_path in model_list([n for n in a.onnx.split(",") if n], ["torchscript"],
                                      a.size, not a.no_zoo, a.cache):
        if zoo_only is not None and label.startswith("zoo ") and label not in zoo_only:
            continue
        try:
            path = get_path()
            kinds = [("leanconv", 1), ("leanconv", 2), ("ort", 2)]
            r = measure(kinds, path, a.min_time, a.min_rounds)
        except Exception as e:
            r = {"error": f"{type(e).__name__}: {e}"[:150]}
        onnx_rows.append((label, r))
        print("\n".join(table([(label, r)], True)[2:]), flush=True)
    names = a.torch.split(",") if a.torch != "all" else list(_torch_architectures())
    for name in [n for n in names if n]:
        try:
            r = measure([("freeze", 1), ("freeze", 2)], name, a.min_time, a.min_rounds)
            r = {("leanconv", t): v for (_, t), v in r.items()}
        except Exception as e:
            r = {"error": f"{type(e).__name__}: {e}"[:150]}
        torch_rows.append((f"{name} {TORCH_SIZE}", r))
        print("\n".join(table([(f"{name} (freeze)", r)], False)[2:]), flush=True)
    from leanconv import _core, isa
    from leanconv.cli.hardware import cpu_name
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python bench/model_threads.py" + "".join(f" {x}" for x in argv)
    lines = ["## Whole models, 1 and 2 threads", "",
             f"Generated by `{cmd}` ({when}). {cpu_name()} ({platform.machine()}), ISA {isa()}, "
             f"{os.cpu_count()} logical CPUs, parallel backend {_core.parallel_backend()}; "
             f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.", "",
             (__doc__ or "").split("\n\n")[2].replace("\n", " "), "",
             "### leanconv.onnx", ""] + table(onnx_rows, True) + [
             "", "### leanconv.torch.freeze (defaults)", ""] + table(torch_rows, False)
    text = "\n".join(lines + ["", host_line()])
    write_section(a.out, "model-threads", text)
    print(f"wrote {a.out}")
    return 0


def _torch_architectures():
    import torchvision_models as tv
    return tv.ARCHITECTURES


if __name__ == "__main__":
    sys.exit(main())
