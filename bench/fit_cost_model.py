"""Fit the cost model's per-ISA prices (kernels/choose.c, lc_cost_terms in
kernels/<isa>/config.c) to measured times, on every CPU there are times for.

    python bench/fit_cost_model.py bench/fit_data/*.json
    python bench/fit_cost_model.py --only dl_mac,dl_move bench/fit_data/*-avx512.json

bench/fit_data holds one file per (CPU, ISA): the 1-thread times of
`python bench/algorithm_choice.py --threads 1 --json FILE` (and the same
under LEANCONV_ISA=avx2), with the CPU's cache sizes in its "meta"
(bench/fit_data/README.md says where each came from).  The files of one ISA
are fitted together: one set of prices, and a time per multiply-add for each
CPU (its clock and width), so that a price is not tuned to the one machine
at hand.

For every (layer, algorithm) of a run, the C model's features (multiply-adds,
patch values packed, values through the Winograd transforms, weight bytes
streamed from beyond L2) come from _core.cost for the file's ISA and cache
sizes (computed in a child process under LEANCONV_CACHE, as the model reads
the sizes once); the time is modelled as
u * (max(MAC, stream * STREAM) + pack_a * PACK + wino_m * WINO),
direct_lanes' as u * (max(dl_mac * MAC, stream * STREAM) + dl_move * PACK),
PACK there being the values its padded copy and transpose move (fitted on the
layers kernels/choose.c weighs it for, strided with a kernel above 1 x 1;
the max taken at dl_mac = 1), u being the CPU's:
for each stream price on a grid, a non-negative least-squares fit of
relative error (each row divided by its time); the grid point with the
least error wins.  The prices (divided by u, the time of one multiply-add)
are what config.c holds.  Prints them with the fit's error per layer, and
per file what "auto" would pick with them against the fastest measured.
--only fits some prices, holding the others at config.c's, on the layers
where the algorithms they price run.  (The fit's own pick leaves out the
channel-lanes Winograd's streaming share, LC_WINO_CL_STREAM_SHARE.)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import leanconv as lc  # noqa: E402
from algorithm_choice import LAYERS  # noqa: E402
from leanconv import _core  # noqa: E402
from leanconv._params import ConvSpec  # noqa: E402

# columns: max(MAC, stream x STREAM), PACK(im2col), PACK(patch2vec), WINO(f2), WINO(f4), WINO(f6),
# direct_lanes' MAC, direct_lanes' moved values
NAMES = ["mac", "pack_im2col", "pack_patch2vec", "wino_f2", "wino_f4", "wino_f6", "dl_mac",
         "dl_move"]
STREAM_GRID = np.arange(0.0, 16.01, 0.25)
BY_NAME = {L[0]: L for L in LAYERS}


def shape_of(row):
    """(C, H, W, M, k, stride, pad, groups) of a row: its own, or its layer's in
    bench/algorithm_choice.py (files written before rows carried it)."""
    return tuple(row["shape"]) if "shape" in row else BY_NAME[row["layer"]][2:]


def cases_here(data):
    """The (layer, algorithm, ms, features, the layer's fastest ms) this
    file's rows fit, under this
    process's cache sizes (which must be the file's)."""
    isa_id = _core.ISA_NAMES.index(data["meta"]["isa"])
    l2 = lc.cpu_features()["cache"]["l2"]
    cases = []
    for r in data["rows"]:
        if r["threads"] != 1:
            continue  # thread counts are not fitted (docs/performance.md says why)
        C, H, W, M, k, s, p, g = shape_of(r)
        if g == C:
            continue  # groups == C: depthwise, always
        spec = ConvSpec.build((M, C // g, k, k), s, p, 1, g)
        geom = spec.geometry(1, C, H, W)
        oh, ow = spec.output_hw(H, W)
        kp_bytes = C // g * k * k * oh * ow * 4
        fastest = min(r["ms"][a] for a in r["algorithms"])  # of all, fitted or not
        for algo in r["algorithms"]:
            if algo == "direct_lanes" and (s == 1 or k == 1):
                continue  # kernels/choose.c never weighs it there
            if algo == "im2col" and k > 1 and kp_bytes > 8 * l2:
                continue  # kernels/choose.c never considers it
            _, feats = _core.cost(lc.algorithms().index(algo), isa_id, geom, 1)
            cases.append((r["layer"], algo, r["ms"][algo], feats, fastest))
    return cases


def picks_here(data):
    """(layer, algorithm auto picks, its time / the fastest algorithm's) for
    each 1-thread row, by kernels/choose.c itself (this build's prices),
    under this process's cache sizes (which must be the file's)."""
    isa_id = _core.ISA_NAMES.index(data["meta"]["isa"])
    out = []
    for r in data["rows"]:
        if r["threads"] != 1 or shape_of(r)[0] == shape_of(r)[-1]:
            continue  # as cases_here: one thread, depthwise (always) left out
        C, H, W, M, k, s, p, g = shape_of(r)
        spec = ConvSpec.build((M, C // g, k, k), s, p, 1, g)
        algo = lc.algorithms()[_core.choose(-1, isa_id, spec.geometry(1, C, H, W), 1)]
        if algo not in r["ms"]:
            continue  # a path the table did not time (grouped layers' depthwise kernel)
        out.append((r["layer"], algo, r["ms"][algo] / min(r["ms"][a] for a in r["algorithms"])))
    return out


def in_child(mode, path, script=__file__, extra=()):
    """A table's (meta, answer): `script mode path *extra` run in a child
    process with the file's cache sizes (the model streams what does not fit
    the CPU's L2, and reads the sizes once), its stdout a JSON list (here:
    --cases or --picks; bench/choice_by_cpu.py passes its own script)."""
    data = json.loads(Path(path).read_text())
    env = dict(os.environ)
    c = data["meta"].get("cache")
    if c:
        env["LEANCONV_CACHE"] = f"{c['l1d']},{c['l2']},{c['l3']}"
    out = subprocess.run([sys.executable, str(script), mode, str(path), *extra], env=env,
                         check=True, capture_output=True, text=True).stdout
    return data["meta"], [tuple(x) for x in json.loads(out)]


def print_regret(title, picks):
    """Geomean and worst of (time of the pick / time of the fastest), and the
    rows more than 5% behind."""
    ratios = [r for _, _, r in picks]
    print(f"  {title}: regret geomean {float(np.exp(np.mean(np.log(ratios)))):.3f}, "
          f"worst {max(ratios):.2f} over {len(ratios)} layers")
    for layer, algo, r in picks:
        if r > 1.05:
            print(f"    {layer:32s} {algo:12s} {r:5.2f}")


def design_row(algo, features, stream_price):
    mac, pack, wino, stream = features
    row = [max(mac, stream_price * stream), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    if algo == "direct_lanes":
        if mac >= stream_price * stream:
            row[0], row[6] = 0.0, mac
        row[7] = pack
    elif algo == "im2col":
        row[1] = pack
    elif algo == "patch2vec":
        row[2] = pack
    elif algo.startswith("winograd"):
        row[3 + ("winograd_f2", "winograd_f4", "winograd_f6").index(algo)] = wino
    return row


def prices_now(isa):
    """The prices kernels/<isa>/config.c holds (its lc_cost_terms initializer
    and the cfg->cost.NAME lines after it), for the ones a fit holds."""
    text = (ROOT / "kernels" / isa / "config.c").read_text()
    got = {m[1]: float(m[2]) for m in re.finditer(r"(?:\.|cost\.)(\w+) = ([0-9.]+)f", text)}
    wino = re.search(r"\.wino_elem = \{([^}]*)\}", text)[1]
    for n, v in zip(("wino_f2", "wino_f4", "wino_f6"), wino.split(",")):
        got[n] = float(v.strip().rstrip("f"))
    return {n: got[n] for n in NAMES[1:] + ["stream_byte"]}


def solve(files, stream_price, held):
    """Prices (per multiply-add) and each file's u minimising the relative
    error, at one stream price, the prices in `held` (name: value) fixed:
    alternating non-negative least squares (the free prices given each
    file's u, then each u given the prices), from the fit of each file
    alone."""
    from scipy.optimize import nnls
    rows = [np.array([design_row(a, f, stream_price) for _, a, _, f, _ in cases])
            for _, cases in files]
    times = [np.array([t for _, _, t, _, _ in cases]) for _, cases in files]
    free = [i for i, n in enumerate(NAMES) if i > 0 and n not in held]
    fixed = np.array([1.0] + [held.get(n, 0.0) for n in NAMES[1:]])  # mac's price is 1
    u = []
    for X, t in zip(rows, times):  # each file alone, for its u
        coef, _ = nnls(X / t[:, None], np.ones(len(t)))
        u.append(coef[0] if coef[0] > 0 else 1.0)
    for _ in range(50):
        # time = u_f * X @ p: nnls of the free columns scaled by u_f, the
        # fixed ones moved to the right-hand side
        A = np.vstack([u_f * X / t[:, None] for u_f, X, t in zip(u, rows, times)])
        coef, _ = nnls(A[:, free], np.ones(len(A)) - A @ fixed)
        p = fixed.copy()
        p[free] = coef
        new_u = []
        for X, t in zip(rows, times):
            r = X @ p / t  # relative prediction at u = 1
            new_u.append(float(r.sum() / (r @ r)))
        done = max(abs(a / b - 1) for a, b in zip(new_u, u)) < 1e-9
        u = new_u
        if done:
            break
    resid = np.concatenate([u_f * (X @ p) / t - 1 for u_f, X, t in zip(u, rows, times)])
    return float(resid @ resid), p, u


# the algorithm whose time each price is part of (stream_byte: all of them)
PRICED = {"pack_im2col": "im2col", "pack_patch2vec": "patch2vec", "wino_f2": "winograd_f2",
          "wino_f4": "winograd_f4", "wino_f6": "winograd_f6", "dl_mac": "direct_lanes",
          "dl_move": "direct_lanes"}


def fit(isa, files, only=None):
    """Fit every price, or only those named in `only`, the others held at
    config.c's; then on the layers where an algorithm they price runs (all
    of each such layer's algorithms, so that each CPU's time per multiply-add
    is set by what that algorithm is weighed against)."""
    held = {} if only is None else {n: v for n, v in prices_now(isa).items() if n not in only}
    if only and "stream_byte" not in only:
        algos = {PRICED[n] for n in only}
        kept = []
        for meta, cases in files:
            layers = {c[0] for c in cases if c[1] in algos}
            kept.append((meta, [c for c in cases if c[0] in layers]))
        files = kept
    best = None
    grid = [held["stream_byte"]] if "stream_byte" in held else STREAM_GRID
    for sp in grid:
        err, p, u = solve(files, sp, held)
        if best is None or err < best[0]:
            best = (err, sp, p, u)
    _, stream_price, p, u = best
    prices = {n: float(c) for n, c in zip(NAMES[1:], p[1:])}
    prices["stream_byte"] = float(stream_price)
    print(f"== ISA {isa}: {sum(len(c) for _, c in files)} (layer, algorithm) times from "
          f"{len(files)} CPU(s)" + (f"; fitted: {', '.join(only)}, the rest held at "
                                    f"kernels/{isa}/config.c's" if only else ""))
    for (meta, _), u_f in zip(files, u):
        print(f"  one multiply-add = {u_f * 1e6:.4f} ns on {meta['cpu']}")
    if len(files) == 1:
        print("  (one CPU only: prices tuned to it; config.c keeps an ISA's prices until a "
              "second CPU's table is here, see bench/fit_data/README.md)")
    for n, v in prices.items():
        print(f"  {n:15s} {v:8.2f}")
    for (meta, cases), u_f in zip(files, u):
        labels = [(layer, a, t, design_row(a, f, stream_price), best)
                  for layer, a, t, f, best in cases]
        print(f"  -- {meta['cpu']}")
        worst = sorted(((abs(u_f * float(np.dot(p, row)) / t - 1), layer, a, t,
                         u_f * float(np.dot(p, row))) for layer, a, t, row, _ in labels),
                       reverse=True)
        print("  largest relative errors:")
        for e, layer, algo, t, pred in worst[:8]:
            print(f"    {layer:32s} {algo:12s} measured {t:8.3f} ms  model {pred:8.3f} ms  ({e:.0%})")
        now = prices_now(isa)
        print_regret("config.c's prices (the fit's own pick)", model_picks(
            cases, np.array([1.0] + [now[n] for n in NAMES[1:]]), now["stream_byte"]))
        print_regret("these prices (the fit's own pick)", model_picks(cases, p, stream_price))
    return prices


def model_picks(cases, p, stream_price):
    """What "auto" would pick with prices p (the fit's model, which leaves out
    what kernels/choose.c prices apart: direct_lanes' 1 x 1 and stem forms,
    its candidate rule, the channel-lanes Winograd's streaming share), as
    (layer, algorithm, its time / the fastest of all the layer's algorithms)."""
    by_layer = {}
    for layer, algo, t, f, best in cases:
        cost = float(np.dot(p, design_row(algo, f, stream_price)))
        by_layer.setdefault(layer, []).append((cost, t, algo, best))
    return [(layer, pick[2], pick[1] / pick[3])
            for layer, pick in ((layer, min(c)) for layer, c in by_layer.items())]


def main():
    if sys.argv[1:2] in (["--cases"], ["--picks"]):  # the child process of in_child
        work = cases_here if sys.argv[1] == "--cases" else picks_here
        print(json.dumps(work(json.loads(Path(sys.argv[2]).read_text()))))
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tables", nargs="+", help="bench/algorithm_choice.py --json files")
    ap.add_argument("--only", help="comma-separated prices to fit (of: " +
                    ", ".join(NAMES[1:] + ["stream_byte"]) + "); the others are held at "
                    "kernels/<isa>/config.c's")
    args = ap.parse_args()
    only = None
    if args.only:
        only = args.only.split(",")
        bad = [n for n in only if n not in NAMES[1:] + ["stream_byte"]]
        if bad:
            ap.error(f"--only: no price named {', '.join(bad)}")
    by_isa = {}
    for path in args.tables:
        meta, cases = in_child("--cases", path)
        by_isa.setdefault(meta["isa"], []).append((meta, cases, path))
    for isa, files in by_isa.items():
        print(f"== ISA {isa}: kernels/{isa}/config.c's prices, kernels/choose.c's own pick "
              "(time of the pick / the fastest)")
        for meta, _, path in files:
            print_regret(meta["cpu"], in_child("--picks", path)[1])
        fit(isa, [(meta, cases) for meta, cases, _ in files], only)


if __name__ == "__main__":
    main()
