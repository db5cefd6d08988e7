"""Plans that decide per input geometry, and lc.conv2d's plan cache."""
import gc

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core, _plan_cache
from cases import beyond_im2col_limit
from reference import TOLERANCE, conv2d_ref, error_for

# sizes in a row, chosen so "auto" moves between Winograd sizes and GEMM
SIZES = [(1, 24, 56, 56), (1, 24, 5, 5), (2, 24, 14, 30), (1, 24, 7, 7), (1, 24, 112, 96),
         (3, 24, 9, 9), (1, 24, 28, 28), (1, 24, 3, 3), (1, 24, 56, 56)]
# ... and one where Im2Col is ruled out whatever the L2 (the scalar prices
# pick Im2Col for every size above where L2 is 2 MiB)
BIG = beyond_im2col_limit(24)
CHANGING_SIZES = SIZES[:5] + [(1, 24, BIG, BIG)] + SIZES[5:]


def make(rng, M=24, C=24, k=3):
    w = rng.standard_normal((M, C, k, k)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    return w, b


@pytest.mark.parametrize("request_", ["auto", "winograd"])
def test_reshape_to_many_sizes_in_a_row(isa, rng, request_):
    w, b = make(rng)
    plan = lc.Conv2d(w, b, padding=1, algorithm=request_, activation="relu")
    used = []
    for shape in CHANGING_SIZES:
        x = rng.standard_normal(shape).astype(np.float32)
        predicted = plan.algorithm_for(shape)
        y = plan(x)
        name = plan.algorithm
        assert name == predicted
        used.append(name)
        ref, scale = conv2d_ref(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1, (0.0, np.inf))
        assert error_for(name, y, ref, scale) <= TOLERANCE[name], (shape, name)
        fresh = lc.Conv2d(w, b, padding=1, algorithm=name, activation="relu")(x)
        assert y.tobytes() == fresh.tobytes(), (shape, name)
        told = lc.Conv2d(w, b, padding=1, algorithm=request_, activation="relu",
                         input_shape=shape)
        assert told.algorithm == name
        assert told(x).tobytes() == y.tobytes()
        assert plan.workspace_bytes(shape) == _core.last_workspace_bytes()
        assert plan._op.packings <= plan.max_packings
    assert len(set(used)) >= 2, used  # the sizes do make it change its mind


def test_packings_are_bounded_shared_and_reported(isa, rng):
    w, b = make(rng)
    plan = lc.Conv2d(w, b, padding=1)
    assert plan.packed_bytes == w.nbytes  # only the copy it packs from, so far
    made = _core.packings_made()
    for shape in SIZES:
        plan(np.ones(shape, np.float32))
        assert plan._op.packings <= Conv2d_max(plan)
        assert plan.packed_bytes == w.nbytes + plan._op.packed_bytes
    # one packing per change of layout, never one per call
    assert _core.packings_made() - made <= len(SIZES)
    # Im2Col and Patch2Vec share one packing; direct reads the plan's copy
    x = np.ones(SIZES[0], np.float32)
    geom = plan.spec.geometry(*SIZES[0])
    plan._op.run(x.reshape(-1), np.empty(24 * 56 * 56, np.float32), b, geom, 1, None,
                 lc.algorithms().index("im2col"))
    held, before = plan.packed_bytes, _core.packings_made()
    for a in ("patch2vec", "direct"):
        plan._op.run(x.reshape(-1), np.empty(24 * 56 * 56, np.float32), b, geom, 1, None,
                     lc.algorithms().index(a))
    assert _core.packings_made() == before and plan.packed_bytes == held


def Conv2d_max(plan):
    return max(1, plan.max_packings)


def test_algorithm_for_does_not_run_or_pack(isa, rng):
    w, b = make(rng)
    plan = lc.Conv2d(w, b, padding=1)
    made, ws = _core.packings_made(), _core.last_workspace_bytes()
    names = {s: plan.algorithm_for(s) for s in SIZES}
    assert _core.packings_made() == made and _core.last_workspace_bytes() == ws
    assert set(names.values()) <= set(lc.algorithms())
    assert plan.algorithm in lc.algorithms()  # before any call: a guess for 28 x 28


def test_input_shape_decides_and_packs_at_creation(isa, rng):
    w, b = make(rng)
    made = _core.packings_made()
    plan = lc.Conv2d(w, b, padding=1, input_shape=(1, 24, 7, 7))
    assert _core.packings_made() == made + (plan.algorithm not in ("direct", "depthwise"))
    assert plan.algorithm == plan.algorithm_for((1, 24, 7, 7))


def test_named_algorithm_never_changes(isa, rng):
    w, b = make(rng)
    plan = lc.Conv2d(w, b, padding=1, algorithm="patch2vec")
    for shape in SIZES[:4]:
        plan(np.ones(shape, np.float32))
        assert plan.algorithm == "patch2vec" == plan.algorithm_for(shape)


def test_decisions_are_per_thread_count(rng):
    """A named algorithm gives the same bits for any thread count."""
    w, b = make(rng)
    x = rng.standard_normal((1, 24, 20, 20)).astype(np.float32)
    for a in ("im2col", "patch2vec", "winograd_f4"):
        plan = lc.Conv2d(w, b, padding=1, algorithm=a)
        assert plan(x, threads=1).tobytes() == plan(x, threads=2).tobytes()
    plan = lc.Conv2d(w, b, padding=1)
    plan(x, threads=1)
    plan(x, threads=2)
    assert plan._op.decided(1, 20, 20, 1) >= 0 and plan._op.decided(1, 20, 20, 2) >= 0
    assert plan._op.decided(1, 20, 20, 3) == -1


# ---- lc.conv2d's cache ---------------------------------------------------------

@pytest.fixture
def empty_cache():
    _plan_cache.clear()
    yield
    _plan_cache.clear()


def test_conv2d_does_not_repack(empty_cache, rng):
    w, b = make(rng)
    x = rng.standard_normal((1, 24, 14, 14)).astype(np.float32)
    first = lc.conv2d(x, w, b, padding=1)
    made = _core.packings_made()
    for _ in range(5):
        assert lc.conv2d(x, w, b, padding=1).tobytes() == first.tobytes()
    assert _core.packings_made() == made
    # another bias with the same weights: same plan, the new bias
    b2 = b + 1
    y2 = lc.conv2d(x, w, b2, padding=1)
    np.testing.assert_allclose(y2, first + 1, rtol=1e-5, atol=1e-4)
    assert _core.packings_made() == made


def test_conv2d_sees_mutated_weights(empty_cache, rng):
    w, b = make(rng)
    x = rng.standard_normal((1, 24, 14, 14)).astype(np.float32)
    for algorithm in ("auto", "im2col", "winograd_f4", "direct"):
        lc.conv2d(x, w, b, padding=1, algorithm=algorithm)
        w[3, 2, 1, 1] += 0.5  # in place: same array, same id
        y = lc.conv2d(x, w, b, padding=1, algorithm=algorithm)
        fresh = lc.Conv2d(w.copy(), b, padding=1, algorithm=algorithm)(x)
        assert y.tobytes() == fresh.tobytes(), algorithm
        w.reshape(-1)[-1] = np.nan  # the last element, through a view
        y = lc.conv2d(x, w, b, padding=1, algorithm=algorithm)
        assert np.isnan(y[0, -1]).any(), algorithm
        w.reshape(-1)[-1] = 0.0


def test_conv2d_cache_is_bounded_and_forgets_dead_arrays(empty_cache, rng):
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    keep = []
    for _ in range(_plan_cache.MAX_PLANS + 8):
        w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
        keep.append(w)
        lc.conv2d(x, w, padding=1)
    assert _plan_cache.info()["plans"] == _plan_cache.MAX_PLANS
    del w
    keep.clear()
    gc.collect()
    assert _plan_cache.info()["plans"] == 0


def test_conv2d_cache_bounds_bytes(empty_cache, rng, monkeypatch):
    monkeypatch.setattr(_plan_cache, "MAX_BYTES", 64 << 10)
    x = rng.standard_normal((1, 32, 6, 6)).astype(np.float32)
    ws = [rng.standard_normal((32, 32, 3, 3)).astype(np.float32) for _ in range(6)]
    for w in ws:
        lc.conv2d(x, w, padding=1)
    info = _plan_cache.info()
    assert info["plans"] == 1 or info["bytes"] <= 64 << 10


def test_conv2d_copies_are_not_cached(empty_cache, rng):
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)[:, :4]  # not contiguous
    y = lc.conv2d(x, w, padding=1)
    assert _plan_cache.info()["plans"] == 0
    np.testing.assert_array_equal(y, lc.conv2d(x, np.ascontiguousarray(w), padding=1))
