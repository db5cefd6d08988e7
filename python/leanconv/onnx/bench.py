"""Latency of an ONNX model on leanconv against onnxruntime, with a per-layer profile.

    from leanconv.onnx.bench import bench_model
    r = bench_model("resnet18.onnx", threads=1, min_time=1.0)
    print(r["text"])

The contenders run interleaved (leanconv, onnxruntime, leanconv, ...) until
each has run for `min_time` seconds, so drifts in clock speed and machine
load hit both alike; latencies are medians.  The per-layer profile comes
from separate runs that time every step (Conv steps include what was fused
into them), so its sum is close to, not equal to, the model latency."""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import onnx

from leanconv import _isa, _threads
from leanconv.onnx.backend import prepare
from leanconv.onnx.graph import _NP_TYPES

KNOWN_COMPARE = ("onnxruntime",)


def max_rel_diff(ours, theirs):
    """max |ours - theirs| / max |theirs| over pairs of outputs (empty ones
    skipped), in float64: the one measure of agreement with another engine
    (the 1e-4 of issue 13's "matches onnxruntime")."""
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - b)))
               / max(float(np.max(np.abs(b))), 1e-30)
               for a, b in zip(ours, theirs) if np.size(a))


def random_inputs(model, seed=0, batch=1):
    """A random input per graph input; symbolic dimensions become `batch` (first) or 1."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dtype = _NP_TYPES.get(tt.elem_type)
        if dtype is None:
            raise ValueError(f"cannot make a random value for input {vi.name!r} of element "
                             f"type {tt.elem_type}")
        shape = [d.dim_value if d.HasField("dim_value") else (batch if k == 0 else 1)
                 for k, d in enumerate(tt.shape.dim)]
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def _ort_session(model_bytes, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"]), \
        ort.__version__


def _interleaved(fns, min_time, min_rounds=3):
    """Median seconds of each function, run round-robin until each has used min_time."""
    times = {k: [] for k in fns}
    while True:
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        if all(len(t) >= min_rounds and sum(t) >= min_time for t in times.values()):
            break
    return {k: statistics.median(t) for k, t in times.items()}, len(times[next(iter(fns))])


def _profile(rep, feeds, runs):
    per_step = {}
    for _ in range(runs):
        timings = []
        rep.program.run(feeds, timings)
        for step, t in timings:
            per_step.setdefault(id(step), [step, []])[1].append(t)
    return [(step, statistics.median(ts)) for step, ts in per_step.values()]


def _conv_row(step, seconds, threads, total):
    op = step.conv
    plan, x_shape = op.last_plan, op.last_input_shape
    s = plan.spec
    N = x_shape[0]
    OH, OW = s.output_hw(x_shape[2], x_shape[3])
    return dict(
        node=step.name, op=step.label(), input_shape=tuple(x_shape),
        weight_shape=(s.M, s.Cg, s.kH, s.kW), stride=s.stride, pads=s.pads,
        dilation=s.dilation, groups=s.groups, algorithm=plan.algorithm,
        time_ms=seconds * 1e3, share=seconds / total if total else 0.0,
        workspace_bytes=plan.workspace_bytes(x_shape, threads=threads),
        packed_bytes=plan.packed_bytes,
        output_bytes=N * s.M * OH * OW * 4,
        gflops=2.0 * N * s.M * OH * OW * s.Cg * s.kH * s.kW / seconds / 1e9 if seconds else 0.0)


def _mib(n):
    return f"{n / 2**20:8.2f}"


def _format(r):
    lines = [f"model {r['model']}  ({r['threads']} thread{'s' if r['threads'] != 1 else ''}, "
             f"leanconv ISA {r['isa']}, inputs "
             + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r["input_shapes"].items())
             + ")",
             f"latency, median of {r['rounds']} interleaved runs"
             + (f" (load average {r['loadavg']:.2f})" if r.get("loadavg") is not None else "")
             + ":",
             f"  leanconv     {r['leanconv_ms']:10.2f} ms"]
    for name, c in r["compare"].items():
        if "error" in c:
            lines.append(f"  {name:<12} unavailable: {c['error']}")
            continue
        verdict = (f"leanconv {c['speedup']:.2f}x faster" if c["speedup"] >= 1 else
                   f"leanconv {1 / c['speedup']:.2f}x slower")
        lines.append(f"  {name:<12} {c['ms']:10.2f} ms   {verdict}"
                     f"   (max |diff| / max |ref| = {c['max_rel_diff']:.1e})")
    lines.append("")
    lines.append(f"per-conv profile (median of {r['profile_runs']} runs; memory in MiB):")
    head = (f"  {'#':>3} {'node':<24} {'op':<28} {'input':<16} {'kernel':<11} {'s':>2} "
            f"{'algorithm':<12} {'ms':>8} {'%':>5} {'GF/s':>6} {'workspace':>9} {'output':>8} "
            f"{'packed':>8}")
    lines.append(head)
    for i, L in enumerate(r["layers"]):
        M, Cg, kh, kw = L["weight_shape"]
        kernel = f"{M}x{Cg}x{kh}x{kw}" + (f"/g{L['groups']}" if L["groups"] > 1 else "")
        lines.append(
            f"  {i:>3} {L['node'][:24]:<24} {L['op'][:28]:<28} "
            f"{'x'.join(map(str, L['input_shape'][1:]))[:16]:<16} {kernel[:11]:<11} "
            f"{L['stride'][0]:>2} {L['algorithm']:<12} {L['time_ms']:8.2f} "
            f"{100 * L['share']:5.1f} {L['gflops']:6.1f} {_mib(L['workspace_bytes']):>9} "
            f"{_mib(L['output_bytes'])} {_mib(L['packed_bytes'])}")
    conv_ms = sum(L["time_ms"] for L in r["layers"])
    lines.append(f"  conv total {conv_ms:.2f} ms; other ops: "
                 + ", ".join(f"{k} {v:.2f} ms" for k, v in
                             sorted(r["other_ops_ms"].items(), key=lambda kv: -kv[1])))
    lines.append(f"  largest conv workspace {_mib(r['max_workspace_bytes']).strip()} MiB, "
                 f"packed weights {_mib(r['packed_bytes']).strip()} MiB")
    return "\n".join(lines)


def bench_model(path, threads=1, min_time=1.0, compare=KNOWN_COMPARE, *, algorithm="auto",
                inputs=None, seed=0) -> dict:
    """Benchmark an ONNX model file (or ModelProto) on leanconv.

    Returns a dict: model, threads, isa, rounds, leanconv_ms, compare
    ({'onnxruntime': {'ms', 'speedup' (their time / ours), 'max_rel_diff', 'version'}}),
    layers (per Conv step: node, op, shapes, algorithm, time_ms, share, gflops,
    workspace_bytes, output_bytes, packed_bytes), other_ops_ms, and 'text': the
    formatted report."""
    threads = _threads.resolve(threads)
    if isinstance(min_time, bool) or not isinstance(min_time, (int, float)) or min_time < 0:
        raise ValueError(f"min_time must be a number of seconds >= 0, got {min_time!r}")
    if isinstance(compare, str):
        compare = (compare,)
    unknown = [c for c in compare if c not in KNOWN_COMPARE]
    if unknown:
        raise ValueError(f"cannot compare with {unknown}; known: {list(KNOWN_COMPARE)}")
    if isinstance(path, onnx.ModelProto):
        model, label = path, path.graph.name or "<model>"
    else:
        model, label = onnx.load(str(path)), str(path)
    rep = prepare(model, algorithm=algorithm, threads=threads)
    feeds = rep.feeds(random_inputs(model, seed) if inputs is None else inputs)

    ours = rep.program.run(feeds)   # warm-up: packs every plan
    fns = {"leanconv": lambda: rep.program.run(feeds)}
    result_compare = {}
    for name in compare:
        try:
            sess, version = _ort_session(model.SerializeToString(), threads)
        except Exception as e:  # not installed, or cannot load this model
            result_compare[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        theirs = sess.run(None, feeds)
        result_compare[name] = {"version": version, "max_rel_diff": max_rel_diff(ours, theirs)}
        fns[name] = (lambda s: lambda: s.run(None, feeds))(sess)
    medians, rounds = _interleaved(fns, min_time)
    for name, c in result_compare.items():
        if "error" not in c:
            c["ms"] = medians[name] * 1e3
            c["speedup"] = medians[name] / medians["leanconv"]

    profile_runs = max(3, min(rounds, 10))
    steps = _profile(rep, feeds, profile_runs)
    total = sum(t for _, t in steps)
    layers, other = [], {}
    for step, t in steps:
        if step.conv is not None and step.conv.last_plan is not None:
            layers.append(_conv_row(step, t, threads, total))
        else:
            other[step.label()] = other.get(step.label(), 0.0) + t * 1e3
    r = dict(model=label, threads=threads, isa=_isa.isa(), rounds=rounds,
             input_shapes={k: tuple(v.shape) for k, v in feeds.items()},
             leanconv_ms=medians["leanconv"] * 1e3, compare=result_compare,
             profile_runs=profile_runs, layers=layers, other_ops_ms=other,
             max_workspace_bytes=max((L["workspace_bytes"] for L in layers), default=0),
             packed_bytes=sum(L["packed_bytes"] for L in layers))
    try:
        r["loadavg"] = os.getloadavg()[0]   # other work on the machine skews multi-thread runs
    except (AttributeError, OSError):
        r["loadavg"] = None
    r["text"] = _format(r)
    return r
