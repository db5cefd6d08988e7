"""Max normalised error per algorithm and ISA over the hand-picked test cases
(tests/cases.py) against the float64 reference (tests/reference.py).

    python bench/accuracy.py

The error of an output is |y - ref| / sum |x|*|w| over its receptive field
(for Winograd: the largest such sum in its output tile), see tests/reference.py."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import leanconv as lc  # noqa: E402
from cases import CASES  # noqa: E402
from reference import TOLERANCE, conv2d_ref, error_for  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    print("| ISA | " + " | ".join(lc.algorithms()) + " |")
    print("|---|" + "---|" * len(lc.algorithms()))
    for isa in lc.available_isas():
        worst = dict.fromkeys(lc.algorithms(), 0.0)
        with lc.use_isa(isa):
            for c in CASES:
                x = rng.standard_normal(c["x"]).astype(np.float32)
                w = rng.standard_normal(c["w"]).astype(np.float32)
                b = rng.standard_normal(c["w"][0]).astype(np.float32) if c["bias"] else None
                kw = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"],
                          groups=c["groups"])
                spec = lc.Conv2d(w, b, activation=c["activation"], algorithm="direct", **kw).spec
                xb = x if x.ndim == 4 else x[None]
                ref, scale = conv2d_ref(xb, w, b, spec.stride, spec.pads, spec.dilation,
                                        spec.groups, spec.clamp)
                for a in lc.algorithms():
                    if lc.supports(a, x.shape, w.shape, **kw):
                        y = lc.conv2d(x, w, b, algorithm=a, activation=c["activation"], **kw)
                        y = y if x.ndim == 4 else y[None]
                        worst[a] = max(worst[a], error_for(a, y, ref, scale))
        print(f"| {isa} | " + " | ".join(f"{worst[a]:.1e}" for a in lc.algorithms()) + " |")
    print("| tolerance | " + " | ".join(f"{TOLERANCE[a]:.0e}" for a in lc.algorithms()) + " |")


if __name__ == "__main__":
    main()
