"""No work item depends on its thread's scratch history or on the order of
items: every algorithm, on every ISA, gives the same bits as a plain 1-thread
run when each item's per-thread scratch is first filled with NaN
(lc_thread_scratch under _core.debug_schedule(poison_scratch=True)) and when
the items run last to first with their thread slots rotated
(debug_schedule(reverse=True)).  This is what lets the pool's threads steal
items from each other (kernels/threadpool.c) and keep the bits of any thread
count."""
import numpy as np
import pytest

import leanconv as lc
from leanconv import _core

# (C, H, W, M, k, stride, groups): remainders in every direction (tiles,
# panels, lanes), enough work (>= 512 K multiply-adds) for several threads.
LAYERS = [
    (16, 33, 33, 24, 3, 1, 1),     # the layer of the NEON flake (tests/test_threadpool.py)
    (16, 33, 29, 24, 3, 1, 1),
    (32, 19, 23, 40, 3, 1, 1),
    (24, 30, 30, 20, 5, 1, 1),
    (20, 37, 31, 36, 3, 2, 1),
    (64, 15, 13, 72, 1, 1, 1),
    (32, 21, 21, 32, 3, 1, 4),
    (136, 14, 14, 136, 1, 1, 4),   # ShuffleNet's grouped 1x1: the groups' tasks in one loop
    (256, 15, 17, 256, 1, 1, 2),   # grouped 1x1 whose tasks pack B into per-thread buffers
    (48, 45, 45, 48, 3, 1, 48),
    (40, 29, 301, 40, 5, 2, 40),   # depthwise rows too wide for its stack row
]


@pytest.fixture
def debug_schedule():
    yield _core.debug_schedule
    _core.debug_schedule()


def _cases(rng):
    for c, h, w_, m, k, s, g in LAYERS:
        x = rng.standard_normal((2, c, h, w_)).astype(np.float32)
        w = rng.standard_normal((m, c // g, k, k)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        for a in lc.algorithms():
            kw = dict(stride=s, padding=k // 2, groups=g)
            if lc.supports(a, x.shape, w.shape, **kw):
                yield a, x, w, b, kw


@pytest.mark.parametrize("mode", ["poison_scratch", "reverse"])
def test_items_are_independent_of_scratch_and_order(isa, mode, rng, debug_schedule):
    for a, x, w, b, kw in _cases(rng):
        plan = lc.Conv2d(w, b, algorithm=a, activation="relu", **kw)
        res = rng.standard_normal(plan(x, threads=1).shape).astype(np.float32)
        ref = plan(x, threads=1, residual=res)
        in_place_ref = res.copy()
        plan(x, threads=1, residual=in_place_ref, out=in_place_ref)
        debug_schedule(**{mode: True})
        try:
            for threads in (1, 2, 3, 7):
                got = plan(x, threads=threads, residual=res)
                assert np.array_equal(got, ref), (isa, a, x.shape, w.shape, kw, threads)
                in_place = res.copy()
                plan(x, threads=threads, residual=in_place, out=in_place)
                assert np.array_equal(in_place, in_place_ref), (isa, a, x.shape, kw, threads)
        finally:
            debug_schedule()


def test_poison_fills_only_the_threads_slice(debug_schedule):
    """What every driver's scratch goes through (lc_thread_scratch): thread
    t's slice, filled with NaN under the poison and only then."""
    buf = np.zeros(3 * 40, np.uint8)
    assert _core.debug_thread_scratch(buf, 40, 1) == 40
    assert not buf.any()
    debug_schedule(poison_scratch=True)
    assert _core.debug_thread_scratch(buf, 40, 1) == 40
    f = buf.view(np.float32)
    assert np.isnan(f[10:20]).all() and not f[:10].any() and not f[20:].any()
    with pytest.raises(ValueError, match="outside"):
        _core.debug_thread_scratch(buf, 40, 3)
