"""Every algorithm x every ISA this CPU has x every parameter kind, against the
float64 reference in tests/reference.py."""
import numpy as np
import pytest

import leanconv as lc
from cases import CASES
from reference import TOLERANCE, conv2d_ref, error_for, normalised_error

ALGORITHMS = lc.algorithms()


def make(c, rng):
    x = rng.standard_normal(c["x"]).astype(np.float32)
    w = rng.standard_normal(c["w"]).astype(np.float32)
    b = rng.standard_normal(c["w"][0]).astype(np.float32) if c["bias"] else None
    return x, w, b


def conv_kwargs(c):
    return dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"],
                groups=c["groups"])


def reference(c, x, w, b):
    plan_spec = lc.Conv2d(w, b, activation=c["activation"], algorithm="direct", **conv_kwargs(c)).spec
    batched = x.ndim == 4
    ref, scale = conv2d_ref(x if batched else x[None], w, b, plan_spec.stride, plan_spec.pads,
                            plan_spec.dilation, plan_spec.groups, plan_spec.clamp)
    return (ref, scale) if batched else (ref[0], scale[0])


@pytest.mark.parametrize("algorithm", ALGORITHMS + ("auto", "winograd"))
@pytest.mark.parametrize("c", CASES, ids=[c["name"] for c in CASES])
def test_case(isa, algorithm, c, rng):
    x, w, b = make(c, rng)
    kw = conv_kwargs(c)
    if not lc.supports(algorithm, x.shape, w.shape, **kw):
        with pytest.raises(ValueError, match="algorithm='auto'"):
            lc.conv2d(x, w, b, algorithm=algorithm, activation=c["activation"], **kw)
        return
    y = lc.conv2d(x, w, b, algorithm=algorithm, activation=c["activation"], **kw)
    ref, scale = reference(c, x, w, b)
    assert y.dtype == np.float32 and y.shape == ref.shape
    plan = lc.Conv2d(w, b, algorithm=algorithm, activation=c["activation"], **kw)
    used = plan.algorithm_for(x.shape)
    err = error_for(used, y, ref, scale)
    assert err <= TOLERANCE[used], (used, err)
    # the plan gives the same answer as the functional call with the same choice
    if algorithm not in ("auto", "winograd"):
        np.testing.assert_array_equal(plan(x), y)


def test_every_algorithm_claims_its_shapes(isa):
    """supports() says yes exactly where the algorithm's constraints allow."""
    x, w3, wdw, w5 = (1, 4, 8, 8), (4, 4, 3, 3), (4, 1, 3, 3), (4, 4, 5, 5)
    for a in ("direct", "im2col", "patch2vec"):
        assert lc.supports(a, x, w3) and lc.supports(a, x, w5, stride=2, dilation=2, padding=4)
    for a in ("winograd_f2", "winograd_f4", "winograd_f6", "winograd"):
        assert lc.supports(a, x, w3, padding=1, groups=1)
        assert not lc.supports(a, x, w3, stride=2)
        assert not lc.supports(a, x, w3, dilation=2)
        assert not lc.supports(a, x, w5)
    assert lc.supports("depthwise", x, wdw, groups=4)
    assert not lc.supports("depthwise", x, w3)


def test_auto_choices(isa):
    assert lc.Conv2d(np.zeros((8, 1, 3, 3), np.float32), groups=8).algorithm == "depthwise"
    assert lc.Conv2d(np.zeros((64, 32, 1, 1), np.float32)).algorithm == "im2col"
    assert lc.Conv2d(np.zeros((64, 64, 3, 3), np.float32), padding=1).algorithm.startswith("winograd")
    assert lc.Conv2d(np.zeros((64, 64, 3, 3), np.float32), stride=2).algorithm in \
        ("patch2vec", "im2col", "direct_lanes")
    assert lc.Conv2d(np.zeros((64, 64, 3, 3), np.float32), algorithm="winograd").algorithm in \
        ("winograd_f2", "winograd_f4", "winograd_f6")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_propagates(isa, algorithm, rng):
    """NaN reaches every output whose receptive field holds it.  Winograd
    spreads it further, but only within the tiles whose input window holds
    it (a documented property: the transforms mix the whole window)."""
    groups = 6 if algorithm == "depthwise" else 1
    M = 16 if algorithm.endswith("_lean") else 6   # whole panels of the ISA's channel lanes
    x = rng.standard_normal((1, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((M, 6 // groups, 3, 3)).astype(np.float32)
    x[0, 2, 5, 7] = np.nan
    y = lc.conv2d(x, w, padding=1, groups=groups, algorithm=algorithm, activation="relu")
    ref, _ = conv2d_ref(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), groups, (0, np.inf))
    ref_nan = np.isnan(ref)
    ours = np.isnan(y)
    assert ref_nan.any()
    assert np.all(ours[ref_nan]), "a NaN input was lost"
    if algorithm.startswith("winograd"):
        m = int(algorithm.split("_")[1][1:])   # winograd_f{m}[_lean]
        # outputs in a tile whose alpha x alpha window (rows ty*m-1 .. ty*m+m) covers (5, 7)
        allowed = np.zeros_like(ours)
        for ty in range(-(-14 // m)):
            for tx in range(-(-14 // m)):
                if ty * m - 1 <= 5 <= ty * m + m and tx * m - 1 <= 7 <= tx * m + m:
                    allowed[..., ty * m:ty * m + m, tx * m:tx * m + m] = True
        assert not np.any(ours & ~allowed), "NaN spread beyond its Winograd tiles"
    else:
        np.testing.assert_array_equal(ours, ref_nan)


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "patch2vec", "depthwise"])
def test_inf_propagates(isa, algorithm, rng):
    groups = 4 if algorithm == "depthwise" else 1
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = np.abs(rng.standard_normal((4, 4 // groups, 3, 3))).astype(np.float32) + 0.1
    x[0, 1, 4, 4] = np.inf
    y = lc.conv2d(x, w, padding=1, groups=groups, algorithm=algorithm)
    ref, _ = conv2d_ref(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), groups)
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))


def test_noncontiguous_and_misaligned_inputs(isa, rng):
    base = rng.standard_normal((1, 8, 20, 20)).astype(np.float32)
    x = base[:, ::2, ::2, ::2]                      # strided view
    raw = np.zeros(x.size * 4 + 1, np.uint8)[1:]   # misaligned float32 buffer
    xm = raw.view(np.float32).reshape(x.shape)
    xm[...] = x
    assert not xm.flags.aligned
    w = np.asfortranarray(rng.standard_normal((5, 4, 3, 3)).astype(np.float32))
    ref, scale = conv2d_ref(x, w, None, (1, 1), (1, 1, 1, 1))
    for xi in (x, xm):
        assert normalised_error(lc.conv2d(xi, w, padding=1), ref, scale) < 1e-4


@pytest.mark.parametrize("hw", [(32, 32), (16, 64), (8, 128)])
def test_im2col_padded_rows(isa, rng, hw):
    """Images of a multiple of 256 pixels, where Im2Col's patch matrix rows are
    padded: the result matches the float64 reference, groups and batch too."""
    x = rng.standard_normal((2, 6) + hw).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    ref, scale = conv2d_ref(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 2)
    y = lc.conv2d(x, w, b, padding=1, groups=2, algorithm="im2col")
    assert normalised_error(y, ref, scale) < TOLERANCE["im2col"]


def test_out_argument(isa, rng):
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    out = np.full((2, 6, 8, 8), np.nan, np.float32)
    y = lc.conv2d(x, w, padding=1, out=out)
    assert y is out
    np.testing.assert_allclose(out, lc.conv2d(x, w, padding=1, algorithm="direct"), atol=1e-4)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_plan_copies_its_bias(isa, rng, layout):
    """Issue 14.5: the bias is copied when the plan is made, like the weights,
    whether it is contiguous or not: changing it afterwards changes nothing."""
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    store = rng.standard_normal(12).astype(np.float32)
    bias = store[:6] if layout == "contiguous" else store[::2]
    plan = lc.Conv2d(w, bias, padding=1)
    before = plan(x)
    bias += 100.0
    np.testing.assert_array_equal(plan(x), before)


def test_big_endian_input_is_converted(isa, rng):
    """Issue 14.6: float32 in the other byte order holds the same values."""
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    swapped = [a.astype(a.dtype.newbyteorder()) for a in (x, w, b)]
    assert not swapped[0].dtype.isnative
    np.testing.assert_array_equal(lc.conv2d(*swapped, padding=1), lc.conv2d(x, w, b, padding=1))


def test_numpy_integer_threads(isa, rng):
    """Issue 14.6: threads= takes NumPy integers, as stride does."""
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    y = lc.conv2d(x, w, stride=np.int32(1), threads=np.int64(2))
    np.testing.assert_array_equal(y, lc.conv2d(x, w, threads=2))
    assert lc.Conv2d(w, threads=np.uint8(2)).threads == 2


def test_input_shape_guides_auto(isa):
    """A plan told its input size chooses for it (here: the same as conv2d)."""
    w = np.zeros((512, 512, 3, 3), np.float32)
    x_shape = (1, 512, 7, 7)
    plan = lc.Conv2d(w, padding=1, input_shape=x_shape)
    from leanconv._select import choose
    from leanconv._isa import isa_id
    assert plan.algorithm == choose("auto", plan.spec, isa_id(), (7, 7))
    with pytest.raises(ValueError, match="channels"):
        lc.Conv2d(w, padding=1, input_shape=(1, 3, 7, 7))
