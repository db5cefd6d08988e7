"""What "auto" picks today on every CPU there are times for: per 1-thread row of
bench/algorithm_choice.py --json tables (bench/fit_data/*.json, or a run of
this machine), the algorithm kernels/choose.c chooses for that CPU's cache
sizes and ISA -- the whole rule, candidate gates included -- and its measured
time against the fastest measured.

    python bench/choice_by_cpu.py bench/fit_data/*-avx512.json /tmp/here.json
    python bench/choice_by_cpu.py --kernel 1 bench/fit_data/*.json   # 1 x 1 layers only

bench/fit_cost_model.py prints the picks of the prices it fits, from the
features of the algorithms it fits; this prints the picks of the prices and
gates built into this tree, so a change of a price or a gate can be checked
against every CPU's table before and after.  Also shown: direct_lanes'
modelled cost over the cheaper GEMM's (kernels/choose.c, lc_conv_cost) and
the measured ratio, which is what a price of direct_lanes would have to
separate.  Each table is read in a child process under LEANCONV_CACHE set to
its CPU's sizes (the model reads them once)."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from _source_tree import use_source_tree

use_source_tree()

import leanconv as lc  # noqa: E402
from leanconv import _core  # noqa: E402
from leanconv._params import ConvSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GEMMS = ("im2col", "patch2vec")


def picks_here(data, kernel):
    """(layer, pick, modelled dl/GEMM or None, ms) of the file's 1-thread rows,
    under this process's cache sizes (which must be the file's)."""
    from fit_cost_model import shape_of  # bench/, beside this file

    isa = data["meta"]["isa"]
    isa_id = _core.ISA_NAMES.index(isa)
    # an ISA that does not price direct_lanes' 1 x 1 form never weighs it
    # there (kernels/pointwise_lanes.c): its modelled cost means nothing
    config = (ROOT / "kernels" / isa / "config.c").read_text()
    pw_priced = re.search(r"cost\.pw_mac = 0*\.?0*[1-9]", config) is not None
    out = []
    with lc.use_isa(isa):
        for r in data["rows"]:
            C, H, W, M, k, s, p, g = shape_of(r)
            if r["threads"] != 1 or (kernel and k != kernel):
                continue
            spec = ConvSpec.build((M, C // g, k, k), s, p, 1, g)
            geom = spec.geometry(1, C, H, W)
            w = _zeros((M, C // g, k, k))
            pick = lc.Conv2d(w, stride=s, padding=p, groups=g, threads=1,
                             input_shape=(1, C, H, W)).algorithm
            cost = {a: _core.cost(lc.algorithms().index(a), isa_id, geom, 1)[0]
                    for a in ("direct_lanes",) + GEMMS if a in r["algorithms"]}
            gemm = min((cost[a] for a in GEMMS if a in cost), default=None)
            ratio = cost["direct_lanes"] / gemm if gemm and "direct_lanes" in cost else None
            if k == 1 and not pw_priced:
                ratio = None
            out.append((r["layer"], pick, ratio, r["ms"]))
    return out


def _zeros(shape):
    import numpy as np

    return np.zeros(shape, np.float32)


def show(path, kernel):
    from fit_cost_model import in_child  # bench/, beside this file

    meta, rows = in_child("--child", path, __file__, ["--kernel", str(kernel)])
    print(f"-- {Path(path).name}: {meta['cpu']}, {meta['isa']}")
    print(f"   {'layer':28s} {'auto picks':12s} {'/fastest':>8s}  {'fastest':12s} "
          f"{'dl/GEMM measured':>16s} {'modelled':>8s}")
    for layer, pick, ratio, ms in rows:  # in_child made each row a tuple
        fastest = min(ms, key=lambda a: ms[a] if a in lc.algorithms() else float("inf"))
        gemm = min((ms[a] for a in GEMMS if a in ms), default=None)
        measured = f"{ms['direct_lanes'] / gemm:16.2f}" if gemm and "direct_lanes" in ms else ""
        modelled = f"{ratio:8.2f}" if ratio else ""
        print(f"   {layer:28s} {pick:12s} {ms[pick] / ms[fastest]:8.2f}  {fastest:12s} "
              f"{measured:>16s} {modelled:>8s}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tables", nargs="+", help="bench/algorithm_choice.py --json files")
    ap.add_argument("--kernel", type=int, default=0, help="only layers of this kernel size")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # of in_child
    args = ap.parse_args()
    if args.child:
        data = json.loads(Path(args.tables[0]).read_text())
        print(json.dumps(picks_here(data, args.kernel)))
        return
    for path in args.tables:
        show(path, args.kernel)


if __name__ == "__main__":
    main()
