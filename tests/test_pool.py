"""kernels/pool.c (leanconv._core.pool2d / global_avg_pool) against a direct
float64 reference: max and average pooling with padding, strides, dilation,
windows running past the end (ceil mode), both count_include_pad rules, NaN,
1 and 2 threads.  (leanconv.onnx's use of it is tested against onnxruntime
in test_onnx_adapter.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_ISAS, ISAS
from leanconv import _core, _isa


def reference(x, OH, OW, k, s, d, pads, is_max, count_include_pad):
    """pads: (top, left, bottom, right) explicit; windows may run past them."""
    P, H, W = x.shape
    pt, pl, pb, pr = pads
    y = np.empty((P, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            vals, n_padded = [], 0
            for i in range(k[0]):
                for j in range(k[1]):
                    h, w = oh * s[0] - pt + i * d[0], ow * s[1] - pl + j * d[1]
                    if 0 <= h < H and 0 <= w < W:
                        vals.append(x[:, h, w].astype(np.float64))
                    n_padded += -pt <= h < H + pb and -pl <= w < W + pr
            if not vals:   # a window wholly in the padding: the fill, or 0 / count
                y[:, oh, ow] = -np.inf if is_max else \
                    0.0 if count_include_pad and n_padded else np.nan
                continue
            v = np.stack(vals)
            y[:, oh, ow] = v.max(axis=0) if is_max else \
                v.sum(axis=0) / (n_padded if count_include_pad else len(vals))
    return y


CASES = [  # (H, W, OH, OW, kernel, stride, dilation, (pt, pl, pb, pr))
    (9, 8, 5, 4, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    (9, 8, 5, 4, (3, 3), (2, 2), (1, 1), (0, 0, 0, 0)),     # last window past the end
    (7, 10, 8, 5, (2, 3), (1, 2), (1, 1), (1, 0, 0, 2)),
    (11, 11, 4, 4, (2, 2), (3, 3), (2, 2), (1, 1, 0, 0)),
    (5, 5, 1, 1, (5, 5), (1, 1), (1, 1), (0, 0, 0, 0)),
]


@pytest.mark.parametrize("H, W, OH, OW, k, s, d, pads", CASES)
@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", ISAS)
def test_pool2d_matches_the_reference(H, W, OH, OW, k, s, d, pads, is_max, include_pad, threads,
                                      isa):
    x = np.random.default_rng(1).standard_normal((6, H, W)).astype(np.float32)
    y = np.full((6, OH, OW), -1.0, np.float32)
    pt, pl, pb, pr = pads
    geom = (6, H, W, OH, OW, k[0], k[1], s[0], s[1], d[0], d[1], pt, pl, pb, pr)
    _core.pool2d(x.reshape(-1), y.reshape(-1), geom, is_max, include_pad, threads,
                 _isa.isa_id(isa))
    expect = reference(x, OH, OW, k, s, d, pads, is_max, include_pad)
    np.testing.assert_allclose(y, expect, rtol=1e-6, atol=1e-6)


def test_max_pool_propagates_nan():
    x = np.zeros((1, 4, 4), np.float32)
    x[0, 1, 1] = np.nan
    y = np.empty((1, 2, 2), np.float32)
    _core.pool2d(x.reshape(-1), y.reshape(-1), (1, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0),
                 True, False, 1)
    assert np.isnan(y[0, 0, 0]) and not np.isnan(y[0, 1, 1])


@pytest.mark.parametrize("geom", [(4, 8, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),      # flat (AVX-512)
                                  (4, 9, 20, 5, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)])  # rows
def test_max_pool_keeps_each_nan_payload_as_the_portable_loops(geom):
    """Quiet and signalling NaNs with their own payloads, and both zeros: every
    ISA gives the portable loops' bits (a NaN tap is taken as it is, the later
    of two NaNs wins, the first of two equal zeros stays)."""
    planes, H, W, OH, OW = geom[:5]
    rng = np.random.default_rng(9)
    bits = rng.integers(-2, 3, (planes, H, W)).astype(np.float32).view(np.uint32)
    nans = np.array([0x7fc00001, 0xffc00002, 0x7f800003, 0xff800004], np.uint32)  # quiet, signalling
    where = rng.random(bits.shape) < 0.05
    bits[where] = rng.choice(nans, int(where.sum()))
    bits[(bits.view(np.float32) == 0) & (rng.random(bits.shape) < 0.5)] = 0x80000000
    x = bits.view(np.float32).reshape(-1)
    outs = []
    for isa in ALL_ISAS:
        y = np.empty(planes * OH * OW, np.float32)
        _core.pool2d(x, y, geom, True, False, 1, _isa.isa_id(isa))
        outs.append(y.view(np.uint32))
    assert np.isin(nans, outs[0]).sum() >= 3   # the payloads reach the output
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


@pytest.mark.parametrize("hw", [1, 7, 8, 49, 50])
def test_global_avg_pool(hw):
    x = np.random.default_rng(2).standard_normal((5, hw)).astype(np.float32)
    y = np.empty(5, np.float32)
    _core.global_avg_pool(x.reshape(-1), y, 5, hw, 2)
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=1), rtol=1e-6, atol=1e-7)


def test_mismatched_buffers_are_refused():
    with pytest.raises(ValueError, match="sizes"):
        _core.pool2d(np.zeros(10, np.float32), np.zeros(4, np.float32),
                     (1, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0), True, False, 1)
    with pytest.raises(ValueError, match="sizes"):
        _core.global_avg_pool(np.zeros(10, np.float32), np.zeros(3, np.float32), 2, 5, 1)
    with pytest.raises(ValueError, match="ISA id 99"):
        _core.pool2d(np.zeros(16, np.float32), np.zeros(4, np.float32),
                     (1, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0), True, False, 1, 99)


# Max pooling's interior columns (every tap inside the row) take their own
# vectorised path (tap by tap across the row; 3-wide windows in one pass): wide
# rows with interior and edges, strides 1-3, dilation, asymmetric padding, NaNs.
INTERIOR_GEOMETRIES = [  # (H, W, kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r)
    (9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),
    (9, 12, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0),
    (11, 17, 2, 3, 1, 2, 1, 1, 1, 0, 0, 2),
    (13, 13, 3, 2, 3, 3, 2, 2, 2, 1, 0, 1),
    (7, 40, 5, 5, 2, 3, 1, 1, 2, 2, 2, 2),
    (5, 6, 3, 4, 1, 1, 1, 1, 1, 2, 1, 2),
    # stride 1 keeping the width: the whole-plane path (GoogLeNet's 3x3 pad 1)
    (16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
    (4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
    (2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),     # no row with every tap inside
    (8, 9, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2),
    (6, 9, 4, 3, 1, 1, 1, 1, 0, 0, 3, 2),     # asymmetric padding
    (7, 5, 2, 5, 1, 1, 1, 1, 1, 4, 0, 0),
]


def reference_max_nan_sticky(x, geom):
    H, W, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = geom
    padded = np.pad(x, ((0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf)
    OH = (H + pt + pb - ((kh - 1) * dh + 1)) // sh + 1
    OW = (W + pl + pr - ((kw - 1) * dw + 1)) // sw + 1
    out = np.full((x.shape[0], OH, OW), -np.inf, np.float32)
    for i in range(kh):
        for j in range(kw):
            tap = padded[:, i * dh:i * dh + (OH - 1) * sh + 1:sh,
                         j * dw:j * dw + (OW - 1) * sw + 1:sw]
            out = np.where(np.isnan(tap) | (tap > out), tap, out)
    return out


@pytest.mark.parametrize("geom", INTERIOR_GEOMETRIES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", ISAS)
def test_max_pool_interior_path_matches_numpy_nans_included(geom, threads, isa):
    rng = np.random.default_rng(0)
    H, W = geom[:2]
    x = rng.standard_normal((3, H, W)).astype(np.float32)
    x[0, H // 2, W // 2] = x[1, 0, 0] = x[2, H - 1, W - 1] = np.nan
    want = reference_max_nan_sticky(x, geom)
    out = np.empty(want.size, np.float32)
    planes, OH, OW = want.shape
    kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = geom[2:]
    _core.pool2d(x.reshape(-1), out, (planes, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, pb,
                                      pr), True, False, threads, _isa.isa_id(isa))
    np.testing.assert_array_equal(out.reshape(want.shape), want)   # (NaNs compare equal)


# An ISA's row primitives (16 outputs a vector, stride 2 by a permute, tails
# masked) give the portable loops' bits: rows as wide as real models' (31 to
# 112 columns: full vectors and tails), max and average, strides 1 to 3,
# dilation, NaNs and signed zeros (max keeps the first of equal values).
ISA_GEOMETRIES = [  # (H, W, kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r)
    (63, 63, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0),      # SqueezeNet's 3x3/2
    (30, 112, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),     # ResNet's 3x3/2 pad 1
    (16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),      # GoogLeNet's 3x3/1 pad 1 (whole plane)
    (16, 34, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0),      # DenseNet's 2x2/2 average
    (9, 47, 3, 5, 1, 1, 1, 2, 1, 3, 0, 2),       # stride 1, dilated columns
    (9, 50, 2, 3, 3, 3, 1, 1, 0, 1, 1, 1),       # stride 3: portable columns
    (5, 33, 3, 3, 2, 2, 2, 1, 2, 1, 0, 1),       # dilated rows
    (6, 8, 2, 3, 2, 2, 1, 1, 3, 1, 1, 0),        # stride-2 columns, a row of windows in the padding
    (7, 6, 7, 8, 2, 2, 1, 1, 0, 2, 0, 0),        # one window a plane, two columns in the padding
]


@pytest.mark.parametrize("geom", ISA_GEOMETRIES)
@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("include_pad", [False, True])
def test_isa_row_primitives_give_the_portable_bits(geom, is_max, include_pad):
    H, W, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = geom
    OH = (H + pt + pb - ((kh - 1) * dh + 1)) // sh + 1
    OW = (W + pl + pr - ((kw - 1) * dw + 1)) // sw + 1
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (4, H, W)).astype(np.float32)   # many equal values
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    x[1, 2, 5] = x[2, H // 2, W - 1] = x[3, H - 1, 0] = np.nan
    g = (4, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr)
    outs = {}
    for isa in ALL_ISAS:
        out = np.full(4 * OH * OW, 7.0, np.float32)
        _core.pool2d(x.reshape(-1), out, g, is_max, include_pad, 1, _isa.isa_id(isa))
        outs[isa] = out
    for isa, out in outs.items():
        assert out.tobytes() == outs["scalar"].tobytes(), isa
    expect = reference(np.nan_to_num(x, nan=0.0), OH, OW, (kh, kw), (sh, sw), (dh, dw),
                       (pt, pl, pb, pr), is_max, include_pad)
    finite = ~np.isnan(outs["scalar"])
    np.testing.assert_allclose(outs["scalar"][finite], expect.reshape(-1)[finite], rtol=1e-6,
                               atol=1e-6)


# Stride-1 max pooling that keeps the plane's size runs small planes in blocks
# (one tall image per task, the rows near each plane boundary redone): block
# sizes that do and do not divide the plane count, 1 and 2 threads.
@pytest.mark.parametrize("planes, H, W", [(37, 4, 4), (300, 8, 8), (65, 16, 16), (5, 3, 7)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", ISAS)
def test_same_size_max_pool_over_blocks_of_planes(planes, H, W, threads, isa):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((planes, H, W)).astype(np.float32)
    x[planes // 2, 0, W - 1] = x[planes - 1, H - 1, 0] = np.nan
    geom = (H, W, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    want = reference_max_nan_sticky(x, geom)
    out = np.empty(want.size, np.float32)
    _core.pool2d(x.reshape(-1), out, (planes, H, W, H, W) + geom[2:], True, False, threads,
                 _isa.isa_id(isa))
    np.testing.assert_array_equal(out.reshape(want.shape), want)


# Whole planes through an ISA's plane primitive (AVX-512; AVX2 and NEON: the plain-C
# template kernels/pool_plane_template.h): output rows in
# chunks that run across planes (a chunk boundary inside a plane, a last
# chunk cut short), tasks of blocks of planes on 1 and 2 threads, windows past
# the end (ceil mode), padding and dilation: the portable loops' bits.
PLANE_CASES = [  # (planes, H, W, OH, OW, (kh, kw), (sh, sw), (dh, dw), (pt, pl, pb, pr))
    (300, 16, 16, 8, 8, (3, 3), (2, 2), (1, 1), (0, 0, 0, 0)),
    (70, 33, 40, 16, 20, (2, 2), (2, 2), (1, 1), (0, 0, 0, 0)),
    (9, 40, 112, 20, 56, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    (150, 7, 7, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (40, 9, 37, 9, 17, (3, 3), (1, 2), (1, 2), (1, 1, 1, 1)),
    (33, 5, 300, 4, 150, (2, 3), (1, 2), (1, 1), (0, 1, 0, 1)),
    # same-size stride-1 max on rows of < 16 floats: AVX-512 runs whole planes
    # flat (kernels/pool_flat.h): rows of 4 and 8 (vectors over 4 and 2 rows),
    # 7, 11 and 15 (a vector's first column changes), several passes of planes
    # per task, asymmetric pads, a pass of one plane, a 1x1 plane
    (37, 4, 4, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (300, 8, 8, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (23, 13, 11, 13, 11, (5, 3), (1, 1), (1, 1), (4, 0, 0, 2)),
    (9, 70, 15, 70, 15, (2, 2), (1, 1), (1, 1), (0, 1, 1, 0)),
    (3, 300, 14, 300, 14, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (40, 1, 1, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    # the flat passes run 4 vectors at once: rows of 16 (GoogLeNet's 16x16
    # branch pools; 16 planes a pass, the last pass one plane), 9-float planes
    # (a vector a plane; 455 planes a pass, 3 slots short of 4), rows of 5 (a
    # vector's first column wraps three times), a window of 7x7
    (65, 16, 16, 16, 16, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (460, 3, 3, 3, 3, (2, 3), (1, 1), (1, 1), (1, 1, 0, 1)),
    (11, 12, 5, 12, 5, (3, 5), (1, 1), (1, 1), (2, 2, 0, 2)),
    (6, 16, 16, 16, 16, (7, 7), (1, 1), (1, 1), (3, 3, 3, 3)),
    # items of 4 and 5 planes (16 items rounded up from 13 to a multiple of 2)
    (64, 56, 56, 28, 28, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    # AVX-512's one-pass form (kernels/pool_flat.h lc_pool_run_fits) on any
    # width: Inception-v2's 28x28 3x3 averages (a vector's start in its plane
    # repeats every 49 vectors: the mask table wraps), 15x15 (every 225: one
    # plane cuts it short), GoogLeNet's 27x27 (729), 32x32, 33x31 and 31x34
    # (odd periods; the caps: test_tabled_forms_at_their_caps), windows with
    # no column left of their position (pad_l 0) or none right (pad_l
    # kw - 1), taller than wide, 8x8
    (40, 28, 28, 28, 28, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (30, 15, 15, 15, 15, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (1, 15, 15, 15, 15, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (5, 27, 27, 27, 27, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (7, 32, 32, 32, 32, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (7, 33, 31, 33, 31, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (7, 31, 34, 31, 34, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (9, 20, 19, 20, 19, (2, 3), (1, 1), (1, 1), (0, 0, 1, 2)),
    (9, 19, 21, 19, 21, (4, 2), (1, 1), (1, 1), (3, 1, 0, 0)),
    (3, 24, 24, 24, 24, (8, 8), (1, 1), (1, 1), (4, 3, 3, 4)),
    (700, 2, 5, 2, 5, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    # AVX-512's stride-2 columns over runs of outputs (W == 2 OW: pool_flat.h
    # lc_pool_s2_fits): Inception-v2's 3x3/2 with pads (0, 0, 1, 1) 14 -> 7
    # (a pass of 83 planes; one plane, its table cut short) and 28 -> 14,
    # ResNet's pads of 1, DenseNet's 2x2/2 averages, rows at stride 3, a
    # window of 8 columns, a plane whose outputs are 1024 (the largest) and
    # 1056 (the rows again)
    (100, 14, 14, 7, 7, (3, 3), (2, 2), (1, 1), (0, 0, 1, 1)),
    (1, 14, 14, 7, 7, (3, 3), (2, 2), (1, 1), (0, 0, 1, 1)),
    (30, 28, 28, 14, 14, (3, 3), (2, 2), (1, 1), (0, 0, 1, 1)),
    (20, 13, 26, 7, 13, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    (40, 14, 14, 7, 7, (2, 2), (2, 2), (1, 1), (0, 0, 0, 0)),
    (12, 17, 10, 6, 5, (2, 3), (3, 2), (1, 1), (1, 0, 0, 1)),
    (5, 16, 20, 8, 10, (3, 8), (2, 2), (1, 1), (1, 3, 1, 3)),
    (2, 32, 64, 32, 32, (1, 2), (1, 2), (1, 1), (0, 0, 0, 0)),
    (2, 33, 64, 33, 32, (1, 2), (1, 2), (1, 1), (0, 0, 0, 0)),
    # one window a plane (AVX-512: 16 planes a vector, pool_flat.h
    # lc_pool_one_fits): Inception-v2's 7x7 average on 7x7 (2 blocks of 16
    # and 8 planes), GoogLeNet's on 6x6 with pads (0, 0, 1, 1), dilated taps
    (40, 7, 7, 1, 1, (7, 7), (1, 1), (1, 1), (0, 0, 0, 0)),
    (41, 6, 6, 1, 1, (7, 7), (1, 1), (1, 1), (0, 0, 1, 1)),
    (40, 9, 9, 1, 1, (3, 3), (1, 1), (4, 4), (0, 0, 0, 0)),
    # SqueezeNet's 3x3/2 max pools (AVX-512's three taps from one pair of
    # loads: two vectors of outputs, and one part-filled; the averages
    # stride-2 columns on odd widths, a column dropped a row)
    (64, 63, 63, 31, 31, (3, 3), (2, 2), (1, 1), (0, 0, 0, 0)),
    (24, 15, 15, 7, 7, (3, 3), (2, 2), (1, 1), (0, 0, 0, 0)),
]


@pytest.mark.parametrize("planes, H, W, OH, OW, k, s, d, pads", PLANE_CASES)
@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("include_pad", [False, True])
def test_pools_over_chunks_of_rows_give_the_portable_bits(planes, H, W, OH, OW, k, s, d, pads,
                                                          is_max, include_pad):
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, (planes, H, W)).astype(np.float32)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    x[planes // 2, H // 2, 0] = x[planes - 1, H - 1, W - 1] = np.nan
    g = (planes, H, W, OH, OW) + k + s + d + pads
    outs = {}
    for isa in ALL_ISAS:
        for threads in (1, 2):
            out = np.full(planes * OH * OW, 7.0, np.float32)
            _core.pool2d(x.reshape(-1), out, g, is_max, include_pad, threads, _isa.isa_id(isa))
            outs[isa, threads] = out
    for key, out in outs.items():
        assert out.tobytes() == outs["scalar", 1].tobytes(), key
    expect = reference(np.nan_to_num(x, nan=0.0), OH, OW, k, s, d, pads, is_max, include_pad)
    finite = ~np.isnan(outs["scalar", 1])
    assert finite.sum() > 0.9 * finite.size
    np.testing.assert_allclose(outs["scalar", 1][finite], expect.reshape(-1)[finite], rtol=1e-6,
                               atol=1e-6)


# AVX-512's tabled forms (kernels/pool_flat.h lc_pool_form), their tables
# built once per geometry by the plan (kernels/pool.c) and shared by the
# threads, at their caps and one past (the row form): same-size planes of up
# to 4096 positions (64x64; 64x65 past), tables of up to 256 KiB (an average
# on 55x55, 230 KB; on 59x59, 264 KB, past; max there 41 KB), GoogLeNet's
# 27x27 (once past the per-call cap of 256 entries); stride-2 columns up to
# 1024 outputs a plane (64 -> 32x32; 66 -> 33x32 past) and odd widths (W =
# 2 OW + 1, SqueezeNet's 55 -> 27, 63 -> 31 (992 outputs with the dropped
# column), 15 -> 7: averages; 65 -> 32 past the cap; max on odd widths the
# register form, no cap);
# 13 -> 7 with padding, W = 2 OW - 1, the row form).  Few planes: the bits
# of the portable loops at 1 and 2 threads, and the reference.
RUN, S2, ROWS, M3S2 = 2, 3, 0, 5   # kernels/pool_flat.h LC_POOL_FORM_*
TABLE_CASES = [  # (planes, H, W, OH, OW, k, s, pads, {is_max: form})
    (3, 64, 64, 64, 64, 3, 1, 1, {True: RUN, False: RUN}),
    (2, 64, 65, 64, 65, 3, 1, 1, {True: ROWS, False: ROWS}),
    (2, 55, 55, 55, 55, 3, 1, 1, {True: RUN, False: RUN}),
    (2, 59, 59, 59, 59, 3, 1, 1, {True: RUN, False: ROWS}),
    (17, 27, 27, 27, 27, 3, 1, 1, {True: RUN, False: RUN}),
    (3, 64, 64, 32, 32, 3, 2, 1, {True: S2, False: S2}),
    (3, 66, 64, 33, 32, 3, 2, 1, {True: ROWS, False: ROWS}),
    (3, 55, 55, 27, 27, 3, 2, 0, {True: M3S2, False: S2}),
    (5, 15, 15, 7, 7, 3, 2, 0, {True: M3S2, False: S2}),
    (4, 13, 13, 7, 7, 3, 2, 1, {True: ROWS, False: ROWS}),
    (2, 63, 63, 31, 31, 3, 2, 0, {True: M3S2, False: S2}),
    (2, 65, 65, 32, 32, 3, 2, 0, {True: M3S2, False: ROWS}),
]


@pytest.mark.skipif("avx512" not in ISAS, reason="AVX-512's tabled pool forms")
@pytest.mark.parametrize("planes, H, W, OH, OW, k, s, p, forms", TABLE_CASES)
@pytest.mark.parametrize("is_max", [True, False])
def test_tabled_forms_at_their_caps(planes, H, W, OH, OW, k, s, p, forms, is_max):
    rng = np.random.default_rng(8)
    x = rng.integers(-3, 4, (planes, H, W)).astype(np.float32)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    x[planes // 2, H // 2, 0] = x[planes - 1, H - 1, W - 1] = np.nan
    g = (planes, H, W, OH, OW, k, k, s, s, 1, 1, p, p, p, p)
    want = np.empty(planes * OH * OW, np.float32)
    _core.pool2d(x.reshape(-1), want, g, is_max, False, 1, _isa.isa_id("scalar"))
    for threads in (1, 2):
        out = np.full_like(want, 7.0)
        call = _core.BoundPool(x.reshape(-1), out, g, 0, 0, is_max, False, threads,
                               _isa.isa_id("avx512"))
        assert call.form == forms[is_max]
        assert call.held_bytes > (0 if call.form in (ROWS, M3S2) else 4 * H)
        _core.run_bound((call,), np.zeros(0, np.uint8))
        assert out.tobytes() == want.tobytes(), threads
    expect = reference(np.nan_to_num(x, nan=0.0), OH, OW, (k, k), (s, s), (1, 1), (p,) * 4,
                       is_max, False)
    finite = ~np.isnan(want)
    np.testing.assert_allclose(want[finite], expect.reshape(-1)[finite], rtol=1e-6, atol=1e-6)



# AVX-512's 3x3/2 max in registers (kernels/pool_flat.h lc_pool_m3s2_fits):
# rows of W >= 2 OW + 1, no left padding; odd widths (one block, a full block
# of 16 that reads column 32, blocks carried over), wider rows, ceil-mode and
# top padding, planes of 1 to 3 rows, a window of 2 rows and dilated rows.
# The portable loops' bits (NaN payloads, infinities, signed zeros), 1 and 2
# threads.
M3S2_CASES = [  # (planes, H, W, OH, OW, kh, sh, dh, pt, pb)
    (3, 15, 15, 7, 7, 3, 2, 1, 0, 0),
    (2, 33, 33, 16, 16, 3, 2, 1, 0, 0),
    (2, 35, 71, 17, 35, 3, 2, 1, 0, 0),
    (2, 16, 36, 8, 17, 3, 2, 1, 0, 1),    # ceil mode: the last window's third row padding
    (3, 9, 9, 5, 4, 3, 2, 1, 1, 1),       # top padding (pad_l 0, W > 2 OW + 1)
    (4, 1, 7, 1, 3, 3, 2, 1, 1, 1),
    (4, 2, 5, 1, 2, 3, 2, 1, 0, 1),
    (4, 3, 9, 1, 4, 3, 2, 1, 0, 0),
    (3, 12, 19, 6, 9, 2, 2, 1, 0, 0),
    (3, 13, 23, 5, 11, 3, 2, 2, 0, 0),
]


@pytest.mark.skipif("avx512" not in ISAS, reason="AVX-512's register form")
@pytest.mark.parametrize("planes, H, W, OH, OW, kh, sh, dh, pt, pb", M3S2_CASES)
def test_odd_width_max_in_registers_gives_the_portable_bits(planes, H, W, OH, OW, kh, sh, dh,
                                                            pt, pb):
    rng = np.random.default_rng(11)
    bits = rng.integers(-2, 3, (planes, H, W)).astype(np.float32).view(np.uint32)
    special = np.array([0x7fc00001, 0xffc00002, 0x7f800003, 0xff800004, 0x7f800000,
                        0xff800000], np.uint32)   # NaNs quiet and signalling, +-inf
    where = rng.random(bits.shape) < 0.04
    bits[where] = rng.choice(special, int(where.sum()))
    bits[(bits.view(np.float32) == 0) & (rng.random(bits.shape) < 0.5)] = 0x80000000
    x = bits.view(np.float32).reshape(-1)
    g = (planes, H, W, OH, OW, kh, 3, sh, 2, dh, 1, pt, 0, pb, 0)
    want = np.empty(planes * OH * OW, np.float32)
    _core.pool2d(x, want, g, True, False, 1, _isa.isa_id("scalar"))
    for threads in (1, 2):
        out = np.full_like(want, 7.0)
        call = _core.BoundPool(x, out, g, 0, 0, True, False, threads, _isa.isa_id("avx512"))
        assert call.form == M3S2
        _core.run_bound((call,), np.zeros(0, np.uint8))
        assert out.tobytes() == want.tobytes(), threads

# Which pools run on 2 threads (kernels/pool.c pool_work): the taps plus a
# fixed cost per output row, so GoogLeNet's and SqueezeNet's small-plane
# pools, each under a split's 2 x 262144 multiply-adds in taps alone, now
# split; a few planes do not.  The team of each call comes from the pool's trace.
@pytest.mark.skipif(_core.parallel_backend() != "pool", reason="no pthread pool in this build")
@pytest.mark.parametrize("geom, team", [
    ((832, 8, 8, 4, 4, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0), 2),      # 53 K taps, 3328 rows
    ((480, 16, 16, 8, 8, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0), 2),    # 276 K taps, 3840 rows
    ((16, 8, 8, 4, 4, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0), 1),       # 64 rows
    ((256, 15, 15, 7, 7, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0), 2),    # SqueezeNet's last, 1792 rows
])
def test_small_plane_pools_split_by_rows_and_taps(geom, team):
    planes, H, W = geom[:3]
    x = np.random.default_rng(3).standard_normal(planes * H * W).astype(np.float32)
    runs = [traced_pool(x, geom, True, threads) for threads in (1, 2)]
    for threads, (_, recs) in zip((1, 2), runs):
        assert [r["team"] for r in recs] == [min(threads, team)]
    assert runs[0][0].tobytes() == runs[1][0].tobytes()


def traced_pool(x, geom, is_max, threads):
    """(output, the pool's trace records) of one pool2d call."""
    y = np.empty(geom[0] * geom[3] * geom[4], np.float32)
    _core.pool_trace(10)
    try:
        _core.pool2d(x, y, geom, is_max, False, threads, _isa.isa_id())
        return y, _core.pool_trace()
    finally:
        _core.pool_trace(0)


# A plane pool's items come in a multiple of the team, of sizes that differ by
# at most one plane: 64 planes of 56x56 output made 13 items of 5 planes
# (7 items against 6); SqueezeNet's third pool (256 planes of 13x13) 3 items.
@pytest.mark.skipif(_core.parallel_backend() != "pool", reason="no pthread pool in this build")
@pytest.mark.parametrize("geom, items", [
    ((64, 112, 112, 56, 56, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1), 14),
    ((256, 27, 27, 13, 13, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0), 4),
    ((1024, 7, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), 4),
])
def test_plane_pool_items_are_balanced_over_the_team(geom, items):
    planes, H, W, OH, OW = geom[:5]
    x = np.random.default_rng(4).standard_normal(planes * H * W).astype(np.float32)
    runs = [traced_pool(x, geom, False, threads) for threads in (1, 2)]
    assert [[r["team"] for r in recs] for _, recs in runs] == [[1], [2]]
    assert runs[1][1][0]["count"] == items
    outs = [y for y, _ in runs]
    assert outs[0].tobytes() == outs[1].tobytes()
    want = reference(x.reshape(planes, H, W), OH, OW, geom[5:7], geom[7:9], geom[9:11],
                     geom[11:], False, False)
    np.testing.assert_allclose(outs[1], want.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("geom", [(14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),   # flat (AVX-512)
                                  (7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
                                  (28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),   # rows
                                  (20, 40, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2),
                                  (9, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)])
@pytest.mark.parametrize("include_pad", [False, True])
def test_averages_divide_with_the_portable_bits_at_every_scale(geom, include_pad):
    """Averages of full-mantissa values from subnormal to near overflow, with
    infinities and NaNs, through every ISA's paths (AVX-512's flat runs and
    rows, the divisor tables): the portable loops' bits.  (A multiply by the
    reciprocal with a Markstein correction would keep them only above 2^-100,
    and measured no faster than vdivps here.)"""
    H, W, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = geom
    OH = (H + pt + pb - ((kh - 1) * dh + 1)) // sh + 1
    OW = (W + pl + pr - ((kw - 1) * dw + 1)) // sw + 1
    rng = np.random.default_rng(11)
    planes = 24
    # int32 exponents: ldexp takes a C int, which int64 cannot cast to on i686
    scale = np.ldexp(1.0, rng.integers(-148, 124, (planes, 1, 1), dtype=np.int32))
    x = (rng.standard_normal((planes, H, W)) * scale).astype(np.float32)
    x[0, 1, 1], x[1, H - 1, W // 2], x[2, 0, 0] = np.inf, -np.inf, np.nan
    g = (planes, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr)
    outs = {}
    for isa in ALL_ISAS:
        out = np.full(planes * OH * OW, 7.0, np.float32)
        _core.pool2d(x.reshape(-1), out, g, False, include_pad, 1, _isa.isa_id(isa))
        outs[isa] = out
    for isa, out in outs.items():
        assert out.tobytes() == outs["scalar"].tobytes(), isa


@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("is_max", [True, False])
def test_one_window_wholly_in_the_padding(is_max, include_pad):
    """A plane's one window with no row in the image (AVX-512's one-window
    form): max the fill -inf, an average NaN (0 / 0) or 0 (padding counted)."""
    x = np.arange(20 * 3, dtype=np.float32)
    geom = (20, 1, 3, 1, 1, 3, 3, 2, 2, 1, 1, 3, 0, 0, 0)   # rows -3..-1 of a 1x3 plane
    outs = []
    for isa in ALL_ISAS:
        y = np.full(20, 7.0, np.float32)
        _core.pool2d(x, y, geom, is_max, include_pad, 1, _isa.isa_id(isa))
        outs.append(y)
    want = -np.inf if is_max else 0.0 if include_pad else np.nan
    for y in outs:
        np.testing.assert_array_equal(y, np.full(20, want, np.float32))


@pytest.mark.parametrize("planes, hw", [(1000, 169), (2048, 49), (3, 20000)])
def test_global_avg_pool_splits_planes_with_the_same_bits(planes, hw):
    """Tasks of whole planes (several a task when small) on 1-3 threads."""
    x = np.random.default_rng(5).standard_normal((planes, hw)).astype(np.float32)
    outs = []
    for threads in (1, 2, 3):
        y = np.full(planes, np.nan, np.float32)
        _core.global_avg_pool(x.reshape(-1), y, planes, hw, threads)
        outs.append(y)
    np.testing.assert_allclose(outs[0], x.astype(np.float64).mean(axis=1), rtol=1e-5, atol=1e-6)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
