"""Whole ONNX models on leanconv.onnx against onnxruntime and OpenVINO; writes docs/onnx.md.

    python bench/onnx_models.py                 # everything (a few minutes)
    python bench/onnx_models.py --models resnet18,mobilenet_v2 --exporters torchscript
    python bench/onnx_models.py --memory-only   # the memory table alone, printed (~1 minute)

Models: torchvision's (random weights) exported by the TorchScript exporter
(opset 17) and the dynamo exporter (its default opset), at --size (ResNet-18
and MobileNetV2 also at 224, and VGG-11 only at 224: its TorchScript export
needs a 7x7 feature map), and the onnx package's light zoo (224) with seeded random
weights (as shipped, its weights are all 0.02 and its Softmax outputs 0.001
everywhere: tests/onnx_exports.py, with_random_weights).  For each
model each engine runs in its own process (its own thread pools, nothing
shared; one thread count at a time), in turns (leanconv, onnxruntime, OpenVINO, leanconv,
...; bench/_rotation.py: each turn waits until the other engines' processes
have stopped using CPU, then 1 untimed and 3 timed back-to-back runs) until
each has run --min-time seconds and at least --min-rounds turns; the table shows medians
and the interquartile range as a percentage of the median.  OpenVINO is forced
to float32 (INFERENCE_PRECISION_HINT=f32), one stream.  "match" is max |ours -
onnxruntime| / max |onnxruntime| on the same random input, over the outputs
and the logits before a closing Softmax.  Peak RSS comes from
separate processes (bench/onnx_memory.py)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _source_tree import use_source_tree  # noqa: E402
use_source_tree()
# leanconv before torch (onnx_exports imports it, only where models are exported): an
# in-place build and torch share one libgomp.so.1, set up by whichever loads it first
from leanconv import _isa  # noqa: E402
from leanconv.cli.hardware import cpu_name  # noqa: E402
import leanconv.onnx as lco  # noqa: E402
from leanconv.onnx.bench import _ort_session, max_rel_diff, random_inputs  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import _rotation  # noqa: E402
from doc_section import host_line  # noqa: E402

BIG_SIZE_TOO = ("resnet18", "mobilenet_v2", "deeplabv3_mobilenet_v3_large")


def model_list(names, exporters, size, zoo, cache, zoo_names=""):
    """[(label, path)] of every model to run (the zoo's: those named in the
    comma-separated zoo_names, or all)."""
    import onnx_exports
    items = []
    for name in names:
        only = onnx_exports.ONLY_SIZE.get(name)
        sizes = [only] if only else sorted({size} | ({224} if name in BIG_SIZE_TOO else set()))
        for exporter in exporters:
            for s in sizes:
                items.append((f"{name} ({exporter}) {s}",
                              lambda n=name, e=exporter, s=s: onnx_exports.export(n, s, e, cache)))
    if zoo:
        only = {n for n in zoo_names.split(",") if n}
        for name in onnx_exports.zoo_models():
            if only and name not in only:
                continue
            items.append((f"zoo {name} 224", lambda n=name: onnx_exports.zoo_with_random_weights(
                n, cache)))
    return items


def ort_runner(path, threads):
    sess, _ = _ort_session(Path(path).read_bytes(), threads)
    return lambda feeds: sess.run(None, feeds)


def openvino_runner(path, threads):
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                     "INFERENCE_NUM_THREADS": threads,
                                                     "NUM_STREAMS": 1})
    req = compiled.create_infer_request()
    return lambda feeds: req.infer(feeds)


def leanconv_runner(path, threads):
    rep = lco.prepare(str(path), threads=threads)
    return lambda feeds: rep.run(feeds)


RUNNERS = {"leanconv": leanconv_runner, "onnxruntime": ort_runner, "openvino": openvino_runner}
PER_TURN, WARMUP = 3, 1   # timed and untimed runs of each turn


def serve(engine, path):
    """An engine in its own process (its own thread pools, nothing shared): on
    each line 'threads n warmup' from stdin, run the model warmup times untimed
    and n times timed, back to back, with that many threads, and print the
    seconds of each timed run as a JSON list (the
    engine is prepared and warmed up for a thread count when first asked for
    it, untimed), or {"error": ...}; 'ready' once loaded."""
    import onnx
    from leanconv.onnx.bench import random_inputs
    feeds = random_inputs(onnx.load(str(path)))
    runners = {}
    print("ready", flush=True)
    for line in sys.stdin:
        threads, n, warmup = (int(v) for v in line.split())
        try:
            if threads not in runners:
                runners.clear()   # (one engine instance at a time)
                runners[threads] = RUNNERS[engine](path, threads)
                for _ in range(3):
                    runners[threads](feeds)
            fn = runners[threads]
        except Exception as e:   # this engine cannot run this model
            print(json.dumps({"error": f"{type(e).__name__}: {e}"[:200]}), flush=True)
            continue
        print(json.dumps(_rotation.timed_runs(lambda f=fn: f(feeds), n, warmup)), flush=True)


def start_engines(path, engines):
    """{engine: serving process} (loaded at once: nothing is timed yet), {engine: error}."""
    started = {name: subprocess.Popen([sys.executable, __file__, "--serve", name, str(path)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for name in engines}
    procs, errors = {}, {}
    for name, p in started.items():
        if p.stdout.readline().strip() != "ready":
            p.kill()
            err = p.stderr.read().strip().splitlines()
            errors[name] = (err[-1] if err else "no output")[:200]
            continue
        procs[name] = p
    return procs, errors


def stop_engines(procs):
    for p in procs.values():
        p.stdin.close()
        p.wait()


def ask(p, threads, n, warmup=0):
    p.stdin.write(f"{threads} {n} {warmup}\n")
    p.stdin.flush()
    return json.loads(p.stdout.readline())


def interleaved(procs, threads, min_time, min_rounds):
    """Turns in rotation (leanconv, onnxruntime, OpenVINO, leanconv, ...;
    bench/_rotation.py) until every engine has min_rounds turns and min_time
    seconds.  Returns ({engine: [seconds]}, {engine: error}, the
    _rotation.Rotation, for its spin and redone-turn figures)."""
    errors = {}
    live = {}
    for name, p in procs.items():   # prepare and warm up each (untimed)
        r = ask(p, threads, 0)
        if isinstance(r, dict):
            errors[name] = r["error"]
        else:
            live[name] = p
    asks = {name: (lambda p=p: ask(p, threads, PER_TURN, WARMUP)) for name, p in live.items()}
    times, rot = _rotation.rotate(asks, {n: p.pid for n, p in live.items()}, min_time,
                                  min_rounds)
    return times, errors, rot


WAIT_POLICIES = [("LEANCONV_POOL_SPIN_US=5000", {"LEANCONV_POOL_SPIN_US": "5000"}),
                 ("LEANCONV_POOL_SPIN_US=1000", {"LEANCONV_POOL_SPIN_US": "1000"}),
                 ("leanconv's bound (default, 300 us)", {}),
                 ("LEANCONV_POOL_SPIN_US=0 (sleep at once)", {"LEANCONV_POOL_SPIN_US": "0"})]


def spin_probe(path, threads, runs=40, gap=0.001):
    """In one process: leanconv's median back to back (layer after layer,
    run after run), onnxruntime's alone, and onnxruntime's `gap` seconds after
    a leanconv run (what leanconv's idle threads cost the next engine)."""
    import onnx
    from leanconv.onnx.bench import random_inputs
    feeds = random_inputs(onnx.load(str(path)))
    ours, theirs = leanconv_runner(path, threads), ort_runner(path, threads)
    for _ in range(3):
        ours(feeds)
        theirs(feeds)

    def median_ms(fn, before=None):
        ts = []
        for _ in range(runs):
            if before is not None:
                before(feeds)
                time.sleep(gap)
            t0 = time.perf_counter()
            fn(feeds)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3
    print(json.dumps({"leanconv": median_ms(ours), "onnxruntime": median_ms(theirs),
                      "onnxruntime_after_leanconv": median_ms(theirs, before=ours)}))


def wait_policy_rows(paths, threads=2):
    """spin_probe under each wait policy, each in a fresh process (leanconv reads
    its environment once), the policies in rotation twice; the faster of the two."""
    rows = []
    for label, path in paths:
        best = {}
        for _ in range(2):
            for name, extra in WAIT_POLICIES:
                env = {k: v for k, v in os.environ.items()
                       if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "LEANCONV_POOL_SPIN_US")}
                env.update(extra)
                out = subprocess.run([sys.executable, __file__, "--spin-probe", str(path),
                                      str(threads)], capture_output=True, text=True, env=env)
                if out.returncode:
                    raise RuntimeError(out.stderr.strip()[-300:])
                r = json.loads(out.stdout)
                b = best.setdefault(name, r)
                for k, v in r.items():
                    b[k] = min(b[k], v)
        rows.append((label, best))
    return rows


def summary(ts, rot=None, name=None):
    med, iqr = _rotation.spread(ts)
    spin = None if rot is None else rot.spin_summary(name)
    return {"ms": med * 1e3, "iqr_pct": iqr, "runs": len(ts),
            "spin_ms": None if spin is None else spin[0] * 1e3,
            "redone": None if rot is None else rot.redone_share(name),
            "settled": None if rot is None else rot.settled(name)}


def match(model, feeds):
    """max |leanconv - onnxruntime| / max |onnxruntime| over the model's
    outputs and, where it ends in a Softmax, the logits before it (a
    saturated or uniform Softmax hides differences).  A prepare of its own:
    the logits output changes the memory plan, which bench_model reports
    for the model as given."""
    import onnx
    import onnx_exports
    probe = onnx_exports.with_logits_output(onnx.ModelProto.FromString(model.SerializeToString()))
    ours = lco.prepare(probe, threads=1).run(feeds)
    ref, _ = _ort_session(probe.SerializeToString(), 1)
    return max_rel_diff(ours, ref.run(None, feeds))


def bench_model(label, path, threads_list, min_time, min_rounds, engines):
    import onnx
    model = onnx.load(path)
    feeds = random_inputs(model)
    row = {"model": label, "threads": {}}
    rep = lco.prepare(model, threads=1)   # the plan, in this process
    if "onnxruntime" in engines:
        row["match"] = match(model, feeds)
    m = rep.memory()
    row["plan_mib"] = None if m is None else m["total"] / 2**20
    del rep
    procs, errors = start_engines(path, ["leanconv"] + list(engines))
    try:
        for threads in threads_list:
            if "leanconv" not in errors:
                times, more, rot = interleaved(procs, threads, min_time, min_rounds)
                errors.update(more)
            if "leanconv" in errors:
                raise RuntimeError(errors["leanconv"])
            row["threads"][threads] = {k: summary(v, rot, k) for k, v in times.items()}
    finally:
        stop_engines(procs)
    if errors:
        row.setdefault("errors", {}).update(errors)
    return row


def per_run_overhead(threads=1, repeats=2000):
    """Microseconds per run of a one-node model (Relu on 8 floats): what a
    run costs beyond its ops.  leanconv through rep.run([x]) as a user calls it."""
    import onnx
    from onnx import TensorProto, helper
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "one-node",
                              [vi("x", TensorProto.FLOAT, [1, 8])],
                              [vi("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "leanconv-one-node.onnx"
    onnx.save(model, str(path))
    x = np.ones((1, 8), np.float32)
    rep = lco.prepare(model, threads=threads)
    sess = ort_runner(path, threads)
    fns = {"leanconv": lambda: rep.run([x]), "onnxruntime": lambda: sess({"x": x})}
    res = {k: [] for k in fns}
    for _ in range(7):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            res[k].append((time.perf_counter() - t0) / repeats * 1e6)
    return {k: statistics.median(v) for k, v in res.items()}


def memory_models(names, size, cache):
    """[(label, path, memory_budget)]: every torchvision model's TorchScript export
    (its dynamo one where TorchScript fails) at its largest size here, and
    ResNet-18 without the default bound on packings."""
    import onnx_exports
    models = []
    for n in names:
        s = onnx_exports.ONLY_SIZE.get(n) or (224 if n in BIG_SIZE_TOO else size)
        for exporter in onnx_exports.EXPORTERS:   # the first that exports it (vit_b_16: dynamo)
            try:
                path = onnx_exports.export(n, s, exporter, cache)
            except Exception as e:
                print(f"{n} ({exporter}) {s}: export failed: {type(e).__name__}"[:200], flush=True)
                continue
            models.append((f"{n} ({exporter}) {s}", path, None))
            break
    if "resnet18" in names:
        models.append(("resnet18 (torchscript) 224",
                       onnx_exports.export("resnet18", 224, "torchscript", cache), sys.maxsize))
    return models


def memory_rows(paths, threads=1):
    """Peak RSS and plan of leanconv and onnxruntime, each in its own process."""
    rows = []
    script = str(ROOT / "bench" / "onnx_memory.py")
    for label, path, budget in paths:
        r = {"model": label + ("" if budget is None else ", memory_budget=sys.maxsize (no bound)"
                               if budget == sys.maxsize else
                               f", memory_budget {budget / 2**20:.1f} MiB")}
        for engine in ("leanconv", "onnxruntime"):
            extra = [] if budget is None or engine != "leanconv" else \
                ["--memory-budget", str(budget)]
            out = subprocess.run([sys.executable, script, str(path), "--engine", engine,
                                  "--threads", str(threads)] + extra,
                                 capture_output=True, text=True)
            if out.returncode:
                r[engine] = {"error": out.stderr.strip().splitlines()[-1:]}
                continue
            r[engine] = json.loads(out.stdout)
        rows.append(r)
    return rows


def fmt_engine(t, name):
    e = t.get(name)
    return "–" if e is None else f"{e['ms']:.2f} ±{e['iqr_pct']:.0f}%"


def fmt_spin(t):
    return " / ".join("–" if t.get(e, {}).get("spin_ms") is None else f"{t[e]['spin_ms']:.1f}"
                      for e in ("leanconv", "onnxruntime", "openvino"))


def fmt_settled(t):
    return " / ".join("–" if t.get(e, {}).get("settled") is None else f"{t[e]['settled']:.2f}"
                      for e in ("leanconv", "onnxruntime", "openvino"))


def fmt_redone(t):
    r = [v["redone"] for v in t.values() if v.get("redone") is not None]
    return "–" if not r else f"{100 * sum(r) / len(r):.0f}%"


def write_markdown(rows, mem, overhead, waits, args, path):
    threads_list = args.threads
    engines = ["onnxruntime", "openvino"]
    load = os.getloadavg()[0]
    command = " ".join(["python bench/onnx_models.py"] + sys.argv[1:])
    lines = ["# leanconv.onnx on whole models", "",
             f"Generated by `{command}` "
             f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC). "
             f"CPU: {cpu_name()} ({platform.machine()}), leanconv ISA "
             f"{_isa.isa()}, "
             f"{os.cpu_count()} logical CPUs; load average at the end {load:.2f} "
             "(other work on the machine skews the figures, most of all at 2 threads: an "
             "OpenMP team needs all its threads on a core at every region's end).", "",
             "Method: " + _rotation.METHOD + f" ({WARMUP} untimed and {PER_TURN} timed runs "
             "per turn; one thread count at a time, each engine prepared and warmed up "
             "untimed first), until each engine has run --min-time s and --min-rounds turns. "
             "`spin` = median ms an engine's process stayed busy after its turn (its pools "
             "spinning), which the next engine waited out; `1st / last run` = median over turns "
             "of the first timed run over the last (near 1: the warm-up run was enough); "
             "`turns redone` = turns run again "
             "because other work on the machine disturbed them, per kept turn (0% on a quiet "
             "machine). "
             "Latency in ms: median ± interquartile range (as % of the median) of all "
             "runs; `x ORT` / `x OV` = their median / leanconv's (above 1: leanconv faster). "
             "OpenVINO forced to f32. `match` = max |leanconv - onnxruntime| / max "
             "|onnxruntime|. Weights random; inputs random.", ""]
    for threads in threads_list:
        lines += [f"## {threads} thread{'s' if threads > 1 else ''}", "",
                  "| model | match | leanconv | onnxruntime | OpenVINO | x ORT | x OV | "
                  "spin ms (leanconv / ORT / OV) | 1st / last run (leanconv / ORT / OV) | "
                  "turns redone |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            t = r["threads"].get(threads, {})
            lc = t.get("leanconv")
            ratios = []
            for e in engines:
                ratios.append("–" if lc is None or e not in t else
                              f"{t[e]['ms'] / lc['ms']:.2f}")
            match = f"{r['match']:.1e}" if r.get("match") is not None else "–"
            lines.append(f"| {r['model']} | {match} | {fmt_engine(t, 'leanconv')} | "
                         f"{fmt_engine(t, 'onnxruntime')} | {fmt_engine(t, 'openvino')} | "
                         f"{ratios[0]} | {ratios[1]} | {fmt_spin(t)} | "
                         f"{fmt_settled(t)} | {fmt_redone(t)} |")
        lines.append("")
    errors = [(r["model"], r["errors"]) for r in rows if r.get("errors")]
    if errors:
        lines += ["Engines that could not run a model:", ""]
        lines += [f"- {m}: {e}" for m, e in errors]
        lines.append("")
    lines += ["## Per-run overhead", "",
              "A one-node model (Relu of 8 floats), 1 thread, median of 7 x 2000 runs: "
              f"leanconv `rep.run([x])` {overhead['leanconv']:.1f} µs, onnxruntime "
              f"`sess.run` {overhead['onnxruntime']:.1f} µs.", ""]
    lines += ["## Thread pool wait policy (2 threads)", "",
              "leanconv's idle pool workers spin a bounded time (300 µs) after their last "
              "parallel region, then sleep (kernels/threadpool.c, docs/threading.md); "
              "`LEANCONV_POOL_SPIN_US` sets another bound. Each "
              "policy in a fresh process (the variable is read at import), leanconv "
              "imported before anything else; medians of 40 runs, the better of two rotations. "
              "`back to back` = leanconv run after run (its layers back to back); `ORT after "
              "leanconv` = onnxruntime 1 ms after a leanconv run, against onnxruntime alone: "
              "what leanconv's spinning threads cost the next engine.", "",
              "| model | policy | leanconv back to back ms | onnxruntime alone ms | "
              "ORT after leanconv ms |", "|---|---|---|---|---|"]
    for label, best in waits:
        for name, _ in WAIT_POLICIES:
            r = best[name]
            lines.append(f"| {label} | {name} | {r['leanconv']:.2f} | {r['onnxruntime']:.2f} | "
                         f"{r['onnxruntime_after_leanconv']:.2f} |")
    lines.append("")
    lines += ["## Memory (separate processes, 1 thread)", "",
              "leanconv: `rep.memory()` is the plan made at prepare (packed weights + constants, "
              "activation arena, largest scratch of one step, the executor's own objects, the "
              "outputs a run returns); "
              "measured = peak RSS growth from before prepare to after the first run "
              "(bench/onnx_memory.py; onnx's checker schema registry and what leanconv's "
              "first model in a process costs once -- kernel code pages, threadpoolctl's "
              "library scan, onnx's shape inference, ~0.7 MiB -- are paid before the "
              "baseline, on a tiny model, and the memory that model freed is given back to "
              "the OS before the baseline is read, so the model cannot reuse it unseen). Peak "
              "RSS = the whole process's high-water mark (Python, NumPy and onnx included); "
              "both engines are given the model's file path, as a user would (leanconv reads "
              "each weight from the file when it packs it: onnx/model_file.py). "
              "By default (no memory_budget) "
              "the convolutions' packings and workspace hold at most their raw weights plus the "
              "model's largest weight (leanconv.onnx.budget.default_budget, as "
              "leanconv.torch.freeze; the workspace priced at one thread, so every thread count "
              "chooses the same algorithms), "
              "Winograd kept where it saves the most time per byte; the memory_budget=sys.maxsize "
              "row lifts that bound (every layer takes auto's packing, the fastest by the cost "
              "model).", "",
              *memory_table(mem)]
    lines += ["", host_line(), ""]
    Path(path).write_text("\n".join(lines))


def memory_table(mem):
    """The memory table's lines (header and one row per memory_rows entry)."""
    lines = ["| model | plan MiB | measured growth MiB | measured / plan | leanconv peak RSS "
             "MiB | onnxruntime peak RSS MiB | leanconv / ORT |",
             "|---|---|---|---|---|---|---|"]
    for r in mem:
        lc, ort = r.get("leanconv", {}), r.get("onnxruntime", {})
        if "plan" not in lc or lc["plan"] is None or "peak_rss_bytes" not in ort:
            lines.append(f"| {r['model']} | error: {lc.get('error') or ort.get('error')} "
                         "| | | | | |")
            continue
        plan = lc["plan"]["total"] / 2**20
        grow = lc["growth_bytes"] / 2**20
        lp, op = lc["peak_rss_bytes"] / 2**20, ort["peak_rss_bytes"] / 2**20
        parts = ", ".join(f"{k} {v / 2**20:.1f}" for k, v in lc["plan"].items() if k != "total")
        lines.append(f"| {r['model']} | {plan:.1f} ({parts}) | {grow:.1f} | {grow / plan:.3f} | "
                     f"{lp:.1f} | {op:.1f} | {lp / op:.2f} |")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        return serve(argv[1], argv[2])
    if argv[:1] == ["--spin-probe"]:
        return spin_probe(argv[1], int(argv[2]))
    import onnx_exports
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models",
                   default=",".join(onnx_exports.TORCHVISION + onnx_exports.TRANSFORMERS),
                   help="torchvision model names, comma-separated ('' for none)")
    p.add_argument("--exporters", default=",".join(onnx_exports.EXPORTERS))
    p.add_argument("--threads", default="1,2")
    from _model_args import add_model_args
    add_model_args(p, min_time=0.4)
    p.add_argument("--out", default=str(ROOT / "docs" / "onnx.md"))
    p.add_argument("--memory-only", action="store_true",
                   help="only the memory table (separate processes), printed, not written")
    a = p.parse_args(argv)
    a.threads = [int(t) for t in a.threads.split(",")]
    names = [n for n in a.models.split(",") if n]
    engines = ["onnxruntime", "openvino"]
    if a.memory_only:
        print("\n".join(memory_table(memory_rows(memory_models(names, a.size, a.cache)))))
        return
    rows = []
    for label, get_path in model_list(names, a.exporters.split(","), a.size, not a.no_zoo,
                                      a.cache, a.zoo):
        try:
            path = get_path()
        except Exception as e:
            print(f"{label}: export failed: {type(e).__name__}: {e}"[:300], flush=True)
            rows.append({"model": label, "threads": {}, "errors": {"export": str(e)[:200]}})
            continue
        try:
            row = bench_model(label, path, a.threads, a.min_time, a.min_rounds, engines)
        except Exception as e:
            print(f"{label}: leanconv failed: {type(e).__name__}: {e}"[:300], flush=True)
            rows.append({"model": label, "threads": {}, "errors": {"leanconv": str(e)[:200]}})
            continue
        rows.append(row)
        print(label, {t: {k: round(v["ms"], 2) for k, v in d.items()}
                      for t, d in row["threads"].items()}, f"match {row.get('match')}",
              flush=True)
    mem_models = memory_models(names, a.size, a.cache)
    mem = memory_rows(mem_models)
    overhead = per_run_overhead()
    waits = wait_policy_rows([(label, path) for label, path, _ in mem_models[:2]])
    write_markdown(rows, mem, overhead, waits, a, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
