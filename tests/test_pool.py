"""kernels/pool.c through _core.pool2d, against a NumPy reference (no onnx
needed: it runs in the sanitizer and NEON suites too).  Max pooling's
interior columns take a separate path from the edges; windows here cover
both, strides 1-3, dilation, asymmetric padding and NaNs."""
import numpy as np
import pytest

from leanconv import _core

GEOMETRIES = [  # (H, W, kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r)
    (9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),
    (9, 12, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0),
    (11, 17, 2, 3, 1, 2, 1, 1, 1, 0, 0, 2),
    (13, 13, 3, 2, 3, 3, 2, 2, 2, 1, 0, 1),
    (7, 40, 5, 5, 2, 3, 1, 1, 2, 2, 2, 2),
    (5, 6, 3, 4, 1, 1, 1, 1, 1, 2, 1, 2),
]


def reference_max(x, geom):
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


@pytest.mark.parametrize("geom", GEOMETRIES)
@pytest.mark.parametrize("threads", [1, 2])
def test_max_pool_matches_numpy_nans_included(geom, threads):
    rng = np.random.default_rng(0)
    H, W = geom[:2]
    x = rng.standard_normal((3, H, W)).astype(np.float32)
    x[0, H // 2, W // 2] = x[1, 0, 0] = x[2, H - 1, W - 1] = np.nan
    want = reference_max(x, geom)
    out = np.empty(want.size, np.float32)
    planes, OH, OW = want.shape
    kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = geom[2:]
    _core.pool2d(x.reshape(-1), out, (planes, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, pb,
                                      pr), True, False, threads)
    np.testing.assert_array_equal(out.reshape(want.shape), want)   # (NaNs compare equal)
