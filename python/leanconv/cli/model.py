"""`leanconv bench --model model.onnx`: whole-model latency on leanconv.onnx,
against whole-model peers (model_peers.py), with the same statistics as the
layer benchmark: interleaved runs, at least --min-runs calls and --min-time
seconds each, median with quartiles and min-max, noisy figures flagged."""
from __future__ import annotations

import json
import platform
import sys


import leanconv as lc

from .errors import CliError
from .hardware import cpu_name, loadavg
from .model_peers import load_model_peers, parse_model_peers
from .report import fmt_ms, render
from .timing import NOISY_SPREAD, SETTLE_S, Candidate, measure

SCHEMA = "leanconv-bench-model/1"
# max |difference| / max |peer output| above which the peers computed something else
AGREEMENT_TOLERANCE = 1e-3


def executor():
    """leanconv.tools.executor, or a CliError saying what is missing."""
    try:
        from leanconv.tools import executor as ex
    except ImportError as e:
        raise CliError(f"this needs leanconv.onnx, which cannot be imported here ({e}); "
                       f"pip install onnx") from None
    return ex


def load_prepared(path, threads, option="--model", shapes=None, memory_budget=False):
    """(model proto, prepared model, feeds) with every user mistake as a CliError.
    memory_budget: lco.prepare's (None: its default); False: the tools' per-layer
    one (executor.PER_LAYER_BUDGET: profiles and splits add up per node)."""
    ex = executor()
    try:
        model = ex.load_model(path)
        prepared = ex.prepare(model, threads, ex.PER_LAYER_BUDGET if memory_budget is False
                              else memory_budget)
        feeds = ex.make_feeds(model, shapes)
        prepared.run(feeds)   # packs the plans; a run-time refusal surfaces here
    except (ValueError, TypeError, NotImplementedError) as e:
        raise CliError(f"{option} {path!r}: {e}") from None
    return model, prepared, feeds


def run(opts, threads) -> int:
    wanted = parse_model_peers(opts.compare)
    for option in ("csv_path", "plot_path"):
        if getattr(opts, option):
            raise CliError(f"--{option[:-5]} does not apply to --model (use --json; "
                           f"`leanconv profile` plots a model)")
    _, prepared, feeds = load_prepared(opts.model, threads, memory_budget=None)  # as users run it
    from leanconv.onnx.bench import max_rel_diff  # importable: load_prepared checked leanconv.onnx
    ours = list(prepared.run(feeds))
    peers, status = load_model_peers(wanted, opts.model, threads)
    cands = [Candidate("leanconv", lambda: prepared.program.run(feeds))]
    notes = [f"{name} skipped: {st['reason']}" for name, st in status.items()
             if st["status"] != "ok"]
    for peer in peers:
        fn = peer.runner(feeds)
        diff = max_rel_diff(ours, fn())
        status[peer.name]["max_rel_diff"] = diff
        if not diff <= AGREEMENT_TOLERANCE:
            notes.append(f"{peer.name}'s outputs differ from leanconv's by {diff:.2g} of their "
                         f"max: check the comparison")
        cands.append(Candidate(peer.name, fn))
    # leanconv.onnx's Gemm/MatMul run on NumPy's BLAS: held to the same thread count
    with executor().blas_threads(threads):
        measure(cands, opts.min_time, opts.min_runs, settle_s=SETTLE_S if threads > 1 else 0.0)
    base = cands[0].median_s
    contenders = {}
    for c in cands:
        contenders[c.key] = dict(c.summary_ms(), vs_leanconv=c.median_s / base)
    noisy = [c.key for c in cands if c.noisy]
    if noisy:
        notes.append(f"noisy timings (interquartile range > {NOISY_SPREAD:.0%} of the median; "
                     f"is another process using the cores? rerun with a larger --min-time): "
                     f"{', '.join(noisy)}")
    result = {
        "schema": SCHEMA,
        "metadata": {
            "version": lc.__version__, "isa": lc.isa(), "threads": threads,
            "cpu": {"name": cpu_name(), "machine": platform.machine()},
            "model": opts.model,
            "inputs": {k: list(v.shape) for k, v in feeds.items()},
            "peers": status, "min_time_s": opts.min_time, "min_runs": opts.min_runs,
            "noisy_spread": NOISY_SPREAD, "loadavg": loadavg(),
            "leanconv_config": f"leanconv.onnx, threads={threads}, NumPy BLAS (Gemm/MatMul) "
                               f"limited to {threads} thread(s)",
            "command": "leanconv " + " ".join(getattr(opts, "argv", sys.argv[1:])),
        },
        "contenders": contenders,
        "notes": notes,
    }
    print(format_table(result))
    if opts.json_path:
        try:
            with open(opts.json_path, "w") as f:
                json.dump(result, f, indent=2)
                f.write("\n")
        except OSError as e:
            raise CliError(f"--json {opts.json_path!r}: {e.strerror or e}") from None
    return 0


def format_table(result) -> str:
    meta = result["metadata"]
    inputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in meta["inputs"].items())
    load = meta["loadavg"]
    lines = [f"leanconv {meta['version']} bench --model {meta['model']}  isa={meta['isa']}  "
             f"threads={meta['threads']}  inputs: {inputs}"
             + (f"  load {load:.2f}" if load is not None else ""), ""]
    table = [["contender", "median ms", "IQR ms", "min-max ms", "runs", "leanconv is"]]
    for name, c in result["contenders"].items():
        verdict = "" if name == "leanconv" else (
            f"{c['vs_leanconv']:.2f}x faster" if c["vs_leanconv"] >= 1 else
            f"{1 / c['vs_leanconv']:.2f}x slower")
        table.append([name, fmt_ms(c["ms"]) + ("!" if c["noisy"] else ""),
                      f"{fmt_ms(c['q1_ms'])}-{fmt_ms(c['q3_ms'])}",
                      f"{fmt_ms(c['min_ms'])}-{fmt_ms(c['max_ms'])}", str(c["runs"]), verdict])
    lines += render(table, set(table[0][1:5]))
    lines += ["", f"median of >= {meta['min_runs']} whole-model runs and >= "
              f"{meta['min_time_s']:g} s each, interleaved; '!' = noisy (IQR > "
              f"{meta['noisy_spread']:.0%} of the median). Per-node times: leanconv profile."]
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)
