"""Issue 14.4: Winograd's transforms multiply by up to 15 (input) and 32 (output) per
dimension (F6), so inputs near float32's limit overflowed inside them
where the convolution itself is finite.  Such tiles are recomputed in double;
a genuine Inf/NaN input still spreads only over its Winograd tiles."""
import numpy as np
import pytest

import leanconv as lc
from reference import TOLERANCE, conv2d_ref, error_for

WINOGRAD = ("winograd_f2", "winograd_f4", "winograd_f6")


def huge_case(rng, magnitude, C=3, M=4, groups=1, H=13, W=11):
    """Inputs of |x| in [magnitude/4, magnitude] with random signs, weights with
    sum |w| = 1 per output channel, bias up to 1e30: every exact output is
    finite (|y| <= magnitude + 1e30 < float32 max)."""
    x = rng.uniform(0.25, 1.0, (2, C, H, W)) * rng.choice([-1.0, 1.0], (2, C, H, W))
    x = (x * magnitude).astype(np.float32)
    w = rng.standard_normal((M, C // groups, 3, 3))
    w = (w / np.abs(w).sum(axis=(1, 2, 3), keepdims=True)).astype(np.float32)
    b = (rng.standard_normal(M) * 1e30).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("algorithm", WINOGRAD)
@pytest.mark.parametrize("magnitude", [1e36, 1e37, 3e37, 1e38, 3e38])
@pytest.mark.parametrize("threads", [1, 4])   # 4: the two-phase split of small images
def test_huge_finite_inputs_give_finite_accurate_outputs(isa, rng, algorithm, magnitude, threads):
    x, w, b = huge_case(rng, magnitude)
    y = lc.conv2d(x, w, b, padding=1, algorithm=algorithm, threads=threads)
    ref, scale = conv2d_ref(x, w, b, pads=(1, 1, 1, 1))
    assert np.isfinite(ref).all()
    assert np.isfinite(y).all(), f"{np.isfinite(y).mean():.0%} finite"
    assert error_for(algorithm, y, ref, scale) < TOLERANCE[algorithm]


@pytest.mark.parametrize("algorithm", WINOGRAD)
def test_huge_inputs_with_groups_and_clamp(isa, rng, algorithm):
    """The recomputed tiles use the right group's weights and the epilogue: a
    clamp must not hide an overflow (it sees the exact value, not +-Inf)."""
    x, w, b = huge_case(rng, 2e38, C=4, M=6, groups=2)
    clamp = (-1e38, 1e38)
    y = lc.conv2d(x, w, b, padding=(0, 2, 1, 0), groups=2, algorithm=algorithm,
                  activation=("clamp",) + clamp)
    ref, scale = conv2d_ref(x, w, b, pads=(0, 2, 1, 0), groups=2, clamp=clamp)
    assert np.isfinite(y).all()
    assert error_for(algorithm, y, ref, scale) < TOLERANCE[algorithm]


def tiles_touching(shape, m, pads, points):
    """Outputs of every Winograd tile whose alpha x alpha input window holds one
    of the input points (row, col)."""
    OH, OW = shape
    allowed = np.zeros(shape, bool)
    for ty in range(-(-OH // m)):
        for tx in range(-(-OW // m)):
            y0, x0 = ty * m - pads[0], tx * m - pads[2]
            if any(y0 <= r < y0 + m + 2 and x0 <= c < x0 + m + 2 for r, c in points):
                allowed[ty * m:ty * m + m, tx * m:tx * m + m] = True
    return allowed


@pytest.mark.parametrize("algorithm", WINOGRAD)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_genuine_inf_nan_still_propagate_among_huge_inputs(isa, rng, algorithm, bad):
    """With huge inputs around them, a NaN or Inf input still reaches every
    output whose receptive field holds it (NaN stays NaN, an Inf is not
    turned into a finite number), spreads no further than its tiles, and the
    other tiles are finite and accurate."""
    m = int(algorithm[-1])
    x, w, b = huge_case(rng, 1e38, C=2, M=3, H=14, W=14)
    w = np.abs(w)   # one sign, so an Inf input gives Inf outputs in the reference
    points = [(5, 7), (12, 1)]
    for r, c in points:
        x[0, 1, r, c] = bad
    y = lc.conv2d(x, w, b, padding=1, algorithm=algorithm)
    ref, scale = conv2d_ref(x, w, b, pads=(1, 1, 1, 1))
    affected = ~np.isfinite(ref)
    assert affected[0].any()
    assert np.all(~np.isfinite(y[affected])), "a non-finite input was lost"
    if np.isnan(bad):
        assert np.all(np.isnan(y[np.isnan(ref)]))
    allowed = np.zeros(y.shape, bool)
    allowed[0] = tiles_touching(y.shape[-2:], m, (1, 1, 1, 1), points)
    assert np.isfinite(y[~allowed]).all(), "a non-finite value spread beyond its tiles"
    keep = ~allowed
    assert error_for(algorithm, np.where(keep, y, 0), np.where(keep, ref, 0),
                     np.where(keep, scale, 1)) < TOLERANCE[algorithm]


@pytest.mark.parametrize("algorithm", WINOGRAD)
def test_ordinary_inputs_are_bitwise_unchanged_by_the_check(isa, rng, algorithm):
    """The overflow check only reads: on ordinary inputs every thread count
    gives the same bits (the recompute path never runs)."""
    x = rng.standard_normal((1, 8, 20, 20)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    ys = [lc.conv2d(x, w, padding=1, algorithm=algorithm, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(ys[0], ys[1])
    ref, scale = conv2d_ref(x, w, pads=(1, 1, 1, 1))
    assert error_for(algorithm, ys[0], ref, scale) < TOLERANCE[algorithm]


@pytest.mark.parametrize("algorithm", WINOGRAD)
def test_huge_weights(isa, rng, algorithm):
    """U = G g G^T grows a weight by at most 3.5x (F4) before it is rounded to
    float32: weights up to 9e37 pack finite, and the products are recomputed
    in double where they overflow."""
    w = (rng.choice([-1.0, 1.0], (3, 2, 3, 3)) * 9e37).astype(np.float32)
    x = (rng.uniform(0.01, 0.1, (1, 2, 10, 9)) * rng.choice([-1.0, 1.0], (1, 2, 10, 9))).astype(np.float32)
    y = lc.conv2d(x, w, padding=1, algorithm=algorithm)
    ref, scale = conv2d_ref(x, w, pads=(1, 1, 1, 1))
    assert np.isfinite(y).all()
    assert error_for(algorithm, y, ref, scale) < TOLERANCE[algorithm]


@pytest.mark.parametrize("algorithm", WINOGRAD)
@pytest.mark.parametrize("in_place", [False, True])
def test_huge_inputs_with_residual_and_activation(isa, rng, algorithm, in_place):
    """A recomputed tile goes through the same residual add and post-op as the
    others, also when out is the residual itself (the residual must be read
    before the tile is written)."""
    x, w, b = huge_case(rng, 1e38)
    r = (rng.standard_normal((2, 4, 13, 11)) * 1e37).astype(np.float32)
    ref, scale = conv2d_ref(x, w, b, pads=(1, 1, 1, 1))
    ref = np.maximum(ref + r.astype(np.float64), 0.0)
    res = r.copy()
    y = lc.conv2d(x, w, b, padding=1, algorithm=algorithm, activation="relu", residual=res,
                  out=res if in_place else None)
    assert np.isfinite(y).all()
    assert error_for(algorithm, y, ref, scale + np.abs(r)) < TOLERANCE[algorithm]
