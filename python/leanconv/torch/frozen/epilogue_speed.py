"""Which parts of a frozen conv's epilogue leanconv runs faster than torch.

leanconv's fused epilogue computes act(conv + bias + residual) in the conv's
own output pass; torch runs the same as in-place ops after the conv.  Fusing
saves memory passes, but an epilogue whose activation is computed slowly
(a scalar exp in double, say) costs more than the pass it saves.  So once
per process freeze times both ways on one mid-sized layer (1x1, 64 -> 64
channels at 28x28, one thread) and fuses a part only where leanconv is at
most 10% slower than torch.  Clamps (ReLU, ReLU6, hardtanh) live in the
micro-kernels' stores and are always fused.  Each activation kind is timed
the first time a model needs it, not all up front: timing torch's
activations pages in their code (all seven kinds: ~5 MB of a frozen
process's resident memory for good), so only what the model runs anyway."""
from __future__ import annotations

import functools
import statistics
import time

import numpy as np
import torch

from leanconv._plan import Conv2d as Plan

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
def _layer():
    """The timed layer: input, residual, weights, bias, output and its tensor view."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 28, 28), dtype=np.float32)
    r = rng.standard_normal((1, 64, 28, 28), dtype=np.float32)
    w = rng.standard_normal((64, 64, 1, 1), dtype=np.float32) * 0.1
    b = np.zeros(64, np.float32)
    y = np.empty_like(r)
    return x, r, w, b, y


def _native_vs_torch(native, post, needs_inference_mode=False):
    """(leanconv's fused call, conv then torch's `post` on the output) in
    seconds, both on one thread, as the plans here."""
    x, r, w, b, y = _layer()
    plain = Plan(w, b, algorithm="im2col", threads=1)
    yt = torch.from_numpy(y)

    def unfused():
        plain(x, out=y)
        post(yt)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            return _median_us([lambda: native(x, y, r), unfused])
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def fuses_residual() -> bool:
    """Whether leanconv adds a residual in its epilogue (measured once)."""
    x, r, w, b, y = _layer()
    plan = Plan(w, b, algorithm="im2col", threads=1)
    rt = torch.from_numpy(r)
    t_native, t_torch = _native_vs_torch(lambda x, y, r: plan(x, out=y, residual=r),
                                         lambda t: t.add_(rt))
    return t_native <= _MARGIN * t_torch


_kinds_fast = {}


def _kind_is_fast(act) -> bool:
    """Whether leanconv's epilogue computes this kind of activation within
    _MARGIN of torch's in-place op (measured once per kind)."""
    key = _key(act)
    if key not in _kinds_fast:
        _, _, w, b, _ = _layer()
        plan = Plan(w, b, algorithm="im2col", threads=1, activation=act.leanconv_form())
        t_native, t_torch = _native_vs_torch(lambda x, y, r: plan(x, out=y), act.apply_)
        _kinds_fast[key] = t_native <= _MARGIN * t_torch
    return _kinds_fast[key]


def _key(a):
    """What the epilogue's speed depends on: the kind (and GELU's form), not
    a slope."""
    return (a.kind, a.params if a.kind == "gelu" else ())


def fuses(activation) -> bool:
    return activation is None or activation.kind == "clamp" or _kind_is_fast(activation)
