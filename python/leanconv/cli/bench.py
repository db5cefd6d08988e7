"""`leanconv bench`: time conv layers per algorithm, and against peers.

For every layer: random float32 data (seeded), then per algorithm a plan
(weights packed once, output preallocated: the steady-state inference cost)
and a functional lc.conv2d call (packing and output allocation included:
the one-off cost), plus each peer -- all measured interleaved (timing.py).
The result is one dict: {"schema", "metadata", "rows", "notes"}; report.py
documents the row fields and turns it into a table, JSON and CSV."""
from __future__ import annotations

import contextlib
import platform
import sys
import time

import numpy as np

import leanconv as lc

from . import args as cli_args
from .errors import CliError
from .hardware import cpu_name, fma_peak_gflops, loadavg
from .peers import load_peers
from .suites import DEFAULT_SUITE, suite
from .timing import NOISY_SPREAD, SETTLE_S, Candidate, geomean, measure

SCHEMA = "leanconv-bench/1"
# Outputs further apart than this (max |difference| / max |peer output|) mean
# the two libraries did not compute the same convolution: worth a warning.
AGREEMENT_TOLERANCE = 1e-2


def collect_layers(opts):
    """[(suite name, Layer)] from --suite and --layer."""
    if opts.suite is None and not opts.layer:
        names = [DEFAULT_SUITE]
    else:
        names = cli_args.parse_suites(opts.suite) if opts.suite is not None else []
    layers = [(name, layer) for name in names for layer in suite(name, opts.batch)]
    for i, text in enumerate(opts.layer, 1):
        layers.append(("custom", cli_args.parse_layer(text, opts.batch, i)))
    for _, layer in layers:
        _check_layer(layer)
    return layers


def _conv_kwargs(layer):
    return dict(stride=layer.stride, padding=layer.pad, dilation=layer.dilation,
                groups=layer.groups)


def _check_layer(layer):
    """leanconv's own validation of the shapes, as one CliError."""
    try:
        lc.workspace_bytes(layer.x_shape, layer.w_shape, threads=1, **_conv_kwargs(layer))
    except (TypeError, ValueError, OverflowError) as e:
        raise CliError(f"impossible layer {layer.shape_text}: {e}") from None


def _layer_data(layer, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    fan_in = (layer.C // layer.groups) * layer.kH * layer.kW
    w = (rng.standard_normal(layer.w_shape, dtype=np.float32) / np.float32(np.sqrt(fan_in)))
    b = rng.standard_normal(layer.M, dtype=np.float32) * np.float32(0.1)
    return x, w, b


def _why_not(alg, layer, w, b):
    """The reason `alg` cannot run `layer`, in leanconv's words."""
    try:
        lc.Conv2d(w, b, algorithm=alg, **_conv_kwargs(layer))
    except ValueError as e:
        text = str(e).split(": ", 1)[-1]
        return text.replace("; use algorithm='auto'", "")
    return f"not supported for a {layer.H}x{layer.W} input"


def _resolve(requested, layer, w, b):
    """requested name -> (concrete algorithm or None, reason when None)."""
    if requested in ("auto", "winograd"):
        try:
            plan = lc.Conv2d(w, b, algorithm=requested, input_shape=layer.x_shape,
                             **_conv_kwargs(layer))
        except ValueError as e:
            return None, str(e).split(": ", 1)[-1].replace("; use algorithm='auto'", "")
        requested = plan.algorithm
    if not lc.supports(requested, layer.x_shape, layer.w_shape, **_conv_kwargs(layer)):
        return None, _why_not(requested, layer, w, b)
    return requested, None


class Progress:
    """Progress lines on stderr, only once a run has taken a few seconds."""
    AFTER_S = 3.0

    def __init__(self, total, quiet):
        self.total, self.quiet = total, quiet
        self.start = time.perf_counter()
        self.printed = False

    def step(self, i, label):
        if self.quiet or time.perf_counter() - self.start < self.AFTER_S:
            return
        sys.stderr.write(f"leanconv bench: [{i}/{self.total}] {label}\n")
        sys.stderr.flush()
        self.printed = True

    def done(self):
        if self.printed:
            sys.stderr.write(f"leanconv bench: done in {time.perf_counter() - self.start:.1f} s\n")


def _bench_layer(suite_name, layer, requested, peers, threads, timing, peak, notes, noisy,
                 seed):
    x, w, b = _layer_data(layer, seed)
    kw = _conv_kwargs(layer)
    resolved = {req: _resolve(req, layer, w, b) for req in requested}
    auto_choice = (resolved["auto"] if "auto" in resolved else _resolve("auto", layer, w, b))[0]

    # one plan + one functional candidate per distinct concrete algorithm
    plans, cands = {}, []
    for alg, _ in resolved.values():
        if alg is None or alg in plans:
            continue
        plan = lc.Conv2d(w, b, algorithm=alg, threads=threads, **kw)
        y = np.empty((layer.N, layer.M) + layer.out_hw, dtype=np.float32)
        plans[alg] = (plan, y)
        cands.append(Candidate(("plan", alg), lambda p=plan, y=y: p(x, out=y, threads=threads)))
        cands.append(Candidate(("func", alg), lambda a=alg: lc.conv2d(
            x, w, b, algorithm=a, threads=threads, **kw)))
    peer_runs = {}
    for peer in peers:
        try:
            peer_runs[peer.name] = (peer, peer.prepare(layer, x, w, b))
        except Exception as e:  # a peer refusing a layer is its result, not our failure
            notes.append(f"{suite_name} {layer.name}: {peer.name} could not run it: {e}")
            continue
        cands.append(Candidate(("peer", peer.name), peer_runs[peer.name][1]))

    measure(cands, *timing, settle_s=SETTLE_S if threads > 1 else 0.0)
    by_key = {c.key: c for c in cands}
    times = {c.key: c.median_s for c in cands}
    noisy += [f"{layer.name} {'fn ' if c.key[0] == 'func' else ''}{c.key[1]}" for c in cands
              if c.noisy]
    _check_agreement(suite_name, layer, plans, peer_runs, notes)

    rows = []
    for req in requested:
        alg, why = resolved[req]
        row = _layer_fields(suite_name, layer)
        row.update(requested=req, algorithm=alg, auto_choice=alg is not None and alg == auto_choice)
        if alg is None:
            row.update(status="skipped", note=why)  # report.py lists these, grouped
        else:
            plan, _ = plans[alg]
            t_plan, t_func = times[("plan", alg)], times[("func", alg)]
            weight_bytes = 4 * int(np.prod(layer.w_shape))
            stats = by_key[("plan", alg)].summary_ms()
            mine = [by_key[("plan", alg)]] + [by_key[("peer", n)] for n in peer_runs]
            row.update(
                status="ok", note="",
                plan_ms=t_plan * 1e3, plan_min_ms=stats["min_ms"],
                plan_q1_ms=stats["q1_ms"], plan_q3_ms=stats["q3_ms"],
                plan_max_ms=stats["max_ms"], plan_spread=stats["spread"],
                noisy=any(c.noisy for c in mine),
                plan_gflops=layer.flops / t_plan / 1e9,
                plan_peak_pct=(100.0 * layer.flops / t_plan / 1e9 / (peak * threads)
                               if peak else None),
                func_ms=t_func * 1e3, func_gflops=layer.flops / t_func / 1e9,
                repeats=stats["runs"],
                workspace_bytes=plan.workspace_bytes(layer.x_shape, threads=threads),
                packed_bytes=plan.packed_bytes, weight_bytes=weight_bytes,
                packed_ratio=plan.packed_bytes / weight_bytes)
            for name in peer_runs:
                t_peer = times[("peer", name)]
                row[f"{name}_ms"] = t_peer * 1e3
                row[f"{name}_min_ms"] = by_key[("peer", name)].min_s * 1e3
                row[f"{name}_spread"] = by_key[("peer", name)].spread
                row[f"vs_{name}"] = t_peer / t_plan
        rows.append(row)
    return rows


def _check_agreement(suite_name, layer, plans, peer_runs, notes):
    """Warn when a peer's output differs from ours: then the comparison is void."""
    for name, (peer, run) in peer_runs.items():
        ref = np.asarray(peer.to_numpy(run()), dtype=np.float64)
        scale = max(float(np.max(np.abs(ref))), 1e-30)
        for alg, (_, y) in plans.items():
            diff = float(np.max(np.abs(y - ref))) / scale
            if not diff <= AGREEMENT_TOLERANCE:
                notes.append(f"{suite_name} {layer.name}: {alg} differs from {name} by "
                             f"{diff:.2g} of the output's max: check the comparison")


def _layer_fields(suite_name, layer):
    OH, OW = layer.out_hw
    return dict(kind="layer", suite=suite_name, layer=layer.name, shape=layer.shape_text,
                count=layer.count, N=layer.N, C=layer.C, H=layer.H, W=layer.W, M=layer.M,
                kH=layer.kH, kW=layer.kW, stride=layer.stride, pad=layer.pad,
                dilation=layer.dilation, groups=layer.groups, OH=OH, OW=OW,
                gflop=layer.flops / 1e9)


def totals(rows, requested, peer_names, peak, threads):
    """One row per (suite, requested algorithm): layer times weighted by count,
    so the sum is a whole forward pass's convolution time.  Against a peer two
    figures: vs_<peer>, the ratio of those sums (what a forward pass sees,
    which a single slow layer can dominate), and vs_<peer>_geomean, the
    count-weighted geometric mean of the per-layer ratios (the headline: one
    outlier layer cannot dominate it), with the per-layer range."""
    out = []
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    for suite_name in suites:
        for req in requested:
            mine = [r for r in rows if r["suite"] == suite_name and r["requested"] == req]
            ok = [r for r in mine if r["status"] == "ok"]
            algs = sorted({r["algorithm"] for r in ok})
            row = dict(kind="total", suite=suite_name, layer="TOTAL",
                       shape=f"{len(ok)} of {len(mine)} distinct layers",
                       count=sum(r["count"] for r in ok), requested=req,
                       algorithm=algs[0] if len(algs) == 1 else ("mixed" if algs else None),
                       auto_choice=None)
            if not ok:
                row.update(status="skipped", note="no layer ran")
                out.append(row)
                continue
            gflop = sum(r["count"] * r["gflop"] for r in ok)
            plan_ms = sum(r["count"] * r["plan_ms"] for r in ok)
            func_ms = sum(r["count"] * r["func_ms"] for r in ok)
            packed = sum(r["count"] * r["packed_bytes"] for r in ok)
            weights = sum(r["count"] * r["weight_bytes"] for r in ok)
            row.update(
                status="ok" if len(ok) == len(mine) else "partial",
                note="" if len(ok) == len(mine) else
                f"{len(mine) - len(ok)} layer(s) skipped: totals cover the rest",
                gflop=gflop, plan_ms=plan_ms, plan_gflops=gflop / plan_ms * 1e3,
                plan_peak_pct=(100.0 * gflop / plan_ms * 1e3 / (peak * threads)
                               if peak else None),
                func_ms=func_ms, func_gflops=gflop / func_ms * 1e3,
                # the network runs its layers one at a time: it needs the largest
                noisy=any(r["noisy"] for r in ok),
                workspace_bytes=max(r["workspace_bytes"] for r in ok),
                packed_bytes=packed, weight_bytes=weights, packed_ratio=packed / weights)
            for name in peer_names:
                if all(r.get(f"{name}_ms") is not None for r in ok):
                    peer_ms = sum(r["count"] * r[f"{name}_ms"] for r in ok)
                    row[f"{name}_ms"] = peer_ms
                    row[f"vs_{name}"] = peer_ms / plan_ms
                    ratios = [r[f"vs_{name}"] for r in ok]
                    row[f"vs_{name}_geomean"] = geomean(ratios, [r["count"] for r in ok])
                    row[f"vs_{name}_min"], row[f"vs_{name}_max"] = min(ratios), max(ratios)
            out.append(row)
    return out


@contextlib.contextmanager
def _isa_context(name):
    if name is None:
        yield lc.isa()
        return
    try:
        ctx = lc.use_isa(name)
        active = ctx.__enter__()
    except (TypeError, ValueError) as e:
        raise CliError(str(e)) from None
    try:
        yield active
    finally:
        ctx.__exit__(None, None, None)


def _threads(requested):
    if requested is not None:
        lc.set_num_threads(requested)
    return lc.get_num_threads()


def run(opts) -> dict:
    layers = collect_layers(opts)
    requested = cli_args.parse_algorithms(opts.algorithms)
    peer_names = cli_args.parse_peers(opts.compare)
    with _isa_context(opts.isa) as isa:
        threads = _threads(opts.threads)
        notes = []
        if opts.threads is not None and threads != opts.threads:
            notes.append(f"--threads {opts.threads} capped to {threads} "
                         f"(OpenMP limit or build without OpenMP)")
        peers, peer_status = load_peers(peer_names, threads)
        for name, st in peer_status.items():
            if st["status"] != "ok":
                notes.append(f"{name} skipped: {st['reason']}")
        peak = fma_peak_gflops(isa)
        progress = Progress(len(layers), opts.quiet)
        rows, noisy = [], []
        for i, (suite_name, layer) in enumerate(layers, 1):
            progress.step(i, f"{suite_name} {layer.name} ({layer.shape_text})")
            rows += _bench_layer(suite_name, layer, requested, peers, threads,
                                 (opts.min_time, opts.min_runs), peak, notes, noisy, seed=i)
        progress.done()
    if noisy:
        shown = ", ".join(noisy[:6]) + (f" and {len(noisy) - 6} more" if len(noisy) > 6 else "")
        notes.append(f"noisy timings (interquartile range > {NOISY_SPREAD:.0%} of the median; "
                     f"is another process using the cores? rerun with a larger --min-time): "
                     f"{shown}")
    ran_peers = [p.name for p in peers]
    rows += totals(rows, requested, ran_peers, peak, threads)
    return {
        "schema": SCHEMA,
        "metadata": {
            "version": lc.__version__,
            "isa": isa,
            "threads": threads,
            "cpu": {"name": cpu_name(), "machine": platform.machine(),
                    "features": [k for k, v in lc.cpu_features().items() if v]},
            "peers": peer_status,
            "fma_peak": {"isa": isa, "gflops_per_thread": peak,
                         "gflops": peak * threads if peak else None},
            "algorithms": requested,
            "suites": list(dict.fromkeys(s for s, _ in layers)),
            "batch": opts.batch,
            "min_time_s": opts.min_time,
            "min_runs": opts.min_runs,
            "noisy_spread": NOISY_SPREAD,
            "loadavg": loadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "command": "leanconv " + " ".join(getattr(opts, "argv", sys.argv[1:])),
        },
        "rows": rows,
        "notes": notes,
    }
