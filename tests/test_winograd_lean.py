"""The lean Winograd algorithms (winograd_f2_lean, winograd_f4_lean): the raw
filters packed, each call transforming a panel of output channels' filters
into U at a time, a run of input channels per transform (kernels/winograd.c,
the ISA's wino_weight).  Against the float64 reference on every ISA this CPU
has (NEON under qemu), the same bits at any thread count and schedule, the
raw size packed, exact workspace, the double recompute of overflowing tiles,
and where they are refused."""
import numpy as np
import pytest

import leanconv as lc
from leanconv import _core
from reference import TOLERANCE, conv2d_ref, error_for

LEAN = ("winograd_f2_lean", "winograd_f4_lean")

# (N, C, H, W, M, groups, padding): output channels a group a multiple of 16
# (every ISA's channel-lanes width divides it); 300 channels are several runs
# of lean_kc (an eighth of L2 over alpha^2 x 16 floats a channel) on the ISAs
# whose width is 16.
CASES = [
    (1, 40, 13, 11, 32, 1, 1),
    (2, 24, 7, 9, 64, 2, 1),
    (1, 300, 6, 6, 16, 1, 1),
    (1, 20, 5, 4, 16, 1, (0, 2, 1, 0)),
]
IDS = ["C40-13x11", "groups2-N2", "C300-runs", "pads-0210"]


def case_arrays(rng, case):
    N, C, H, W, M, groups, padding = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    return x, w, b, dict(padding=padding, groups=groups)


@pytest.mark.parametrize("algorithm", LEAN)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_the_float64_reference(isa, rng, algorithm, case):
    x, w, b, kw = case_arrays(rng, case)
    assert lc.supports(algorithm, x.shape, w.shape, **kw)
    plan = lc.Conv2d(w, b, algorithm=algorithm, activation="relu", **kw)
    y = plan(x, threads=1)
    assert _core.last_workspace_bytes() == plan.workspace_bytes(x.shape, threads=1)
    spec = plan.spec
    ref, scale = conv2d_ref(x, w, b, spec.stride, spec.pads, spec.dilation, spec.groups,
                            spec.clamp)
    assert plan.algorithm_for(x.shape) == algorithm
    assert error_for(algorithm, y, ref, scale) <= TOLERANCE[algorithm]
    np.testing.assert_array_equal(
        lc.conv2d(x, w, b, algorithm=algorithm, activation="relu", threads=1, **kw), y)


@pytest.mark.parametrize("algorithm", LEAN)
def test_same_bits_at_any_thread_count_and_schedule(isa, rng, algorithm):
    """Threads split the blocks, or the output channels a panel at a time;
    each panel's runs of input channels add up in one order: the 1-thread
    bits at every count, with the scratch poisoned and the items reversed,
    with a residual and in place."""
    x, w, b, kw = case_arrays(rng, (1, 300, 9, 10, 64, 1, 1))
    plan = lc.Conv2d(w, b, algorithm=algorithm, activation="relu", **kw)
    res = rng.standard_normal(plan(x, threads=1).shape).astype(np.float32)
    ref = plan(x, threads=1, residual=res)
    try:
        for mode in ({}, {"poison_scratch": True}, {"reverse": True}):
            _core.debug_schedule(**mode)
            for threads in (1, 2, 3, 7):
                got = plan(x, threads=threads, residual=res)
                assert np.array_equal(got, ref), (algorithm, mode, threads)
                in_place = res.copy()
                plan(x, threads=threads, residual=in_place, out=in_place)
                assert np.array_equal(in_place, ref), (algorithm, mode, threads)
    finally:
        _core.debug_schedule()


@pytest.mark.parametrize("algorithm", LEAN)
def test_packs_the_raw_filters_and_sizes_its_workspace_exactly(isa, rng, algorithm):
    x, w, b, kw = case_arrays(rng, (1, 64, 14, 14, 48, 1, 1))
    plan = lc.Conv2d(w, b, algorithm=algorithm, **kw)
    assert plan.packed_bytes == w.nbytes
    packed_f4 = lc.Conv2d(w, b, algorithm="winograd_f4", **kw).packed_bytes
    assert packed_f4 >= 4 * w.nbytes
    for threads in (1, 2):
        plan(x, threads=threads)
        assert _core.last_workspace_bytes() == plan.workspace_bytes(x.shape, threads=threads)


@pytest.mark.parametrize("algorithm", LEAN)
def test_overflowing_tiles_are_recomputed_from_the_raw_filters(isa, rng, algorithm):
    """Inputs near float32's limit overflow inside the transforms where the
    convolution is finite: those tiles are redone in double, U transformed
    from the raw filters (winograd_exact.c, lc_wino_u_double)."""
    x = rng.uniform(0.25, 1.0, (1, 6, 9, 8)) * rng.choice([-1.0, 1.0], (1, 6, 9, 8))
    x = (x * 2e38).astype(np.float32)
    w = rng.standard_normal((16, 6, 3, 3))
    w = (w / np.abs(w).sum(axis=(1, 2, 3), keepdims=True)).astype(np.float32)
    y = lc.conv2d(x, w, padding=1, algorithm=algorithm, threads=1)
    ref, scale = conv2d_ref(x, w, pads=(1, 1, 1, 1))
    assert np.isfinite(ref).all() and np.isfinite(y).all()
    assert error_for(algorithm, y, ref, scale) < TOLERANCE[algorithm]


def test_refused_where_the_channels_do_not_fill_whole_panels(isa):
    x, w = (1, 8, 8, 8), (18, 8, 3, 3)   # 18: a multiple of no ISA's width
    for a in LEAN:
        assert not lc.supports(a, x, w, padding=1)
        with pytest.raises(ValueError, match="lean Winograd needs"):
            lc.conv2d(np.zeros(x, np.float32), np.zeros(w, np.float32), padding=1, algorithm=a)
        assert not lc.supports(a, (1, 8, 8, 8), (16, 8, 1, 1))   # not 3x3


def test_auto_and_winograd_never_pick_them(isa):
    """They trade time for memory on every call: only a name, or a memory
    budget (leanconv._budget), chooses them."""
    for C, H in ((256, 14), (512, 7), (64, 56)):
        w = np.zeros((C, C, 3, 3), np.float32)
        for request in ("auto", "winograd"):
            got = lc.Conv2d(w, padding=1, algorithm=request).algorithm_for((1, C, H, H))
            assert got not in LEAN, (C, H, request, got)


def test_the_cost_model_prices_a_transformed_filter_value_alike_at_either_size(isa):
    """A lean call's extra cost over its Winograd twin is the filters it
    transforms, priced per U value the same for F2 and F4 (kernels/choose.c:
    a filter's transform is ~5 flops and a store a value at either size;
    priced at F2's own, cheaper tile value, F2 lean looked half its cost and
    a memory budget put ResNet-18 128's 256@8 on it).  On maps small enough
    for one block of tiles and weights that stay in L2, where nothing else
    differs between the two."""
    from leanconv import _isa
    from leanconv._select import algorithm_id
    per_value = {}
    for C, H in ((64, 8), (64, 12)):
        geometry = (1, C, H, H, C, 3, 3, H, H, 1, 1, 1, 1, 1, 1, 1, 1, 1)
        for plain, alpha2 in (("winograd_f2", 16), ("winograd_f4", 36)):
            lean, f_lean = _core.cost(algorithm_id(plain + "_lean"), _isa.isa_id(isa), geometry, 1)
            full, f_full = _core.cost(algorithm_id(plain), _isa.isa_id(isa), geometry, 1)
            if not (f_lean[0] == f_full[0] and f_lean[3] == f_full[3] == 0.0):
                pytest.skip(f"{plain} and its lean twin run different GEMM forms on {isa} "
                            "(their multiply-adds differ): the difference is not the transform")
            per_value[C, H, plain] = (lean - full) / (alpha2 * C * C)
    f2, f4 = per_value[64, 8, "winograd_f2"], per_value[64, 8, "winograd_f4"]
    assert f2 > 0 and f2 == pytest.approx(f4, rel=1e-6), per_value
    assert all(v == pytest.approx(f2, rel=1e-6) for v in per_value.values()), per_value
