"""Which parts of a frozen conv's epilogue leanconv runs faster than torch.

leanconv's fused epilogue computes act(conv + bias + residual) in the conv's
own output pass; torch runs the same as in-place ops after the conv.  Fusing
saves memory passes, but an epilogue whose activation is computed slowly
(a scalar exp in double, say) costs more than the pass it saves.  So once
per process freeze times both ways on one mid-sized layer (1x1, 64 -> 64
channels at 28x28, one thread) and fuses a part only where leanconv is at
most 10% slower than torch.  Clamps (ReLU, ReLU6, hardtanh) live in the
micro-kernels' stores and are always fused."""
from __future__ import annotations

import functools
import statistics
import time

import numpy as np
import torch

from leanconv._plan import Conv2d as Plan
from leanconv.torch.frozen.activations import Activation

KINDS = (Activation("hardswish"), Activation("hardsigmoid"), Activation("silu"),
         Activation("sigmoid"), Activation("gelu", ("none",)), Activation("gelu", ("tanh",)),
         Activation("leaky_relu", (0.01,)))
_MARGIN = 1.1


def _median_us(fns, rounds=7):
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


@functools.lru_cache(maxsize=None)
def fused_parts():
    """(activations fused, whether a residual add is fused), measured once."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 28, 28), dtype=np.float32)
    r = rng.standard_normal((1, 64, 28, 28), dtype=np.float32)
    w = rng.standard_normal((64, 64, 1, 1), dtype=np.float32) * 0.1
    b = np.zeros(64, np.float32)
    y = np.empty_like(r)
    yt, rt = torch.from_numpy(y), torch.from_numpy(r)
    plain = Plan(w, b, algorithm="im2col", threads=1)

    def unfused(post):
        def run():
            plain(x, out=y)
            post(yt)
        return run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)       # both sides on one thread, as the plans here
    try:
        t_native, t_torch = _median_us([lambda: plain(x, out=y, residual=r),
                                        unfused(lambda t: t.add_(rt))])
        residual = t_native <= _MARGIN * t_torch
        fused = {a for a in KINDS if _fast(a, x, w, b, y, unfused)}
    finally:
        torch.set_num_threads(threads)
    return frozenset(fused), residual


def _fast(act, x, w, b, y, unfused):
    with torch.inference_mode():
        native = Plan(w, b, algorithm="im2col", threads=1, activation=act.leanconv_form())
        t_native, t_torch = _median_us([lambda: native(x, out=y), unfused(act.apply_)])
    return t_native <= _MARGIN * t_torch


def _key(a):
    """What the epilogue's speed depends on: the kind (and GELU's form), not
    a slope."""
    return (a.kind, a.params if a.kind == "gelu" else ())


def fuses(activation) -> bool:
    return activation is None or activation.kind == "clamp" or \
        _key(activation) in {_key(a) for a in fused_parts()[0]}


def fuses_residual() -> bool:
    return fused_parts()[1]
