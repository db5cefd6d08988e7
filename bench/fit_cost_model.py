"""Fit the cost model's per-ISA prices (kernels/choose.c, lc_cost_terms in
kernels/<isa>/config.c) to measured times.

    python bench/algorithm_choice.py --threads 1 --json t.json        # per ISA:
    LEANCONV_ISA=avx2 python bench/algorithm_choice.py --threads 1 --json t2.json
    python bench/fit_cost_model.py t.json [t2.json ...]

For every (layer, algorithm) of a run, the C model's features (multiply-adds,
patch values packed, values through the Winograd transforms, weight bytes
streamed from beyond L2) for the run's ISA come from _core.cost; the time is
modelled as u * (max(MAC, stream * STREAM) + pack_a * PACK + wino_m * WINO),
direct_lanes' as u * (max(dl_mac * MAC, stream * STREAM) + dl_move * PACK),
PACK there being the values its padded copy and transpose move (fitted on the
layers kernels/choose.c weighs it for, strided with a kernel above 1 x 1;
the max taken at dl_mac = 1):
for each stream price on a grid, a non-negative least-squares fit of
relative error (each row divided by its time); the grid point with the
least error wins.  The prices (divided by u, the time of one multiply-add)
are what config.c holds.  Prints them with the fit's error per layer.
"""
from __future__ import annotations

import json
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


def fit(path):
    data = json.loads(Path(path).read_text())
    isa = data["meta"]["isa"]
    isa_id = _core.ISA_NAMES.index(isa)
    by_name = {L[0]: L for L in LAYERS}
    cases = []
    for r in data["rows"]:
        _, _, C, H, W, M, k, s, p, g = by_name[r["layer"]]
        spec = ConvSpec.build((M, C // g, k, k), s, p, 1, g)
        geom = spec.geometry(1, C, H, W)
        if g == C:
            continue  # groups == C: depthwise, always
        kp_bytes = C // g * k * k * spec.output_hw(H, W)[0] * spec.output_hw(H, W)[1] * 4
        for algo in r["algorithms"]:
            if algo == "direct_lanes" and (s == 1 or k == 1):
                continue  # kernels/choose.c never weighs it there
            if algo == "im2col" and k > 1 and kp_bytes > 8 * lc.cpu_features()["cache"]["l2"]:
                continue  # kernels/choose.c never considers it
            _, feats = _core.cost(lc.algorithms().index(algo), isa_id, geom, r["threads"])
            cases.append((r["layer"], algo, r["ms"][algo], feats))
    from scipy.optimize import nnls
    best = None
    for sp in STREAM_GRID:
        A = np.array([[v / t for v in design_row(a, f, sp)] for _, a, t, f in cases])
        coef, resid = nnls(A, np.ones(len(cases)))
        if best is None or resid < best[0]:
            best = (resid, sp, coef)
    _, stream_price, coef = best
    labels = [(layer, a, t, design_row(a, f, stream_price)) for layer, a, t, f in cases]
    u = coef[0]
    prices = {n: c / u for n, c in zip(NAMES[1:], coef[1:])}
    prices["stream_byte"] = stream_price
    print(f"== {path}: ISA {isa}, {len(cases)} (layer, algorithm) times; "
          f"one multiply-add = {u * 1e6:.4f} ns")
    for n, v in prices.items():
        print(f"  {n:15s} {v:8.2f}")
    worst = []
    for layer, algo, t, row in labels:
        pred = float(np.dot(coef, row))
        worst.append((abs(pred / t - 1), layer, algo, t, pred))
    worst.sort(reverse=True)
    print("  largest relative errors:")
    for e, layer, algo, t, pred in worst[:8]:
        print(f"    {layer:32s} {algo:12s} measured {t:8.3f} ms  model {pred:8.3f} ms  ({e:.0%})")
    # what "auto" would pick with these prices, and how far from the fastest
    print("  choice with these prices (measured time / fastest):")
    rows = {}
    for layer, algo, t, row in labels:
        rows.setdefault(layer, []).append((float(np.dot(coef, row)), t, algo))
    for layer, cands in rows.items():
        pick = min(cands)
        best = min(c[1] for c in cands)
        flag = "  <-- over 1.15" if pick[1] / best > 1.15 else ""
        print(f"    {layer:32s} {pick[2]:12s} {pick[1] / best:5.2f}{flag}")
    return isa, prices


if __name__ == "__main__":
    for p in sys.argv[1:]:
        fit(p)
