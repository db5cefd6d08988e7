"""Optional GEMM-family micro-kernel entries (include/leanconv/ukernels.h),
called directly through the extension's exported symbols, against plain
NumPy; edge cases as in tests/test_ukernels.py, with the source and the
destination right before an unreadable page so an over-read or over-write
crashes the test instead of passing.

  lc_f32_strided_copy__<isa>: dst[r] = src[r*stride], r < n, reading only
  src[0 .. (n-1)*stride].

Then the patch unwrapping that uses it, end to end: strided and padded
convolutions whose input ends right before an unreadable page, Im2Col and
Patch2Vec on every ISA, against a float64 convolution."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core

from test_ukernels import guarded

ISAS = lc.available_isas()
COPY_ISAS = [i for i in ISAS if i in ("avx2", "avx512")]
_lib = ctypes.CDLL(_core.__file__)


def strided_copy_fn(isa):
    fn = getattr(_lib, f"lc_f32_strided_copy__{isa}")
    fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
    fn.restype = None
    return fn


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


# n around the vector widths (8, 16) and their multiples, for every tail
COPY_NS = [1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 112]


@pytest.mark.parametrize("isa", COPY_ISAS)
@pytest.mark.parametrize("stride", [1, 2, 3, 4, 6])
def test_strided_copy_edges(isa, stride):
    fn = strided_copy_fn(isa)
    rng = np.random.default_rng(stride)
    for n in COPY_NS:
        src = guarded((n - 1) * stride + 1)  # the last float read is the last readable one
        src[:] = rng.standard_normal(src.size).astype(np.float32)
        dst = guarded(n)  # and the last float written the last writable one
        dst[:] = np.nan
        fn(ptr(dst), ptr(src), n, stride)
        np.testing.assert_array_equal(dst, src[::stride][:n], err_msg=f"n={n}")


@pytest.mark.parametrize("isa", COPY_ISAS)
def test_strided_copy_writes_only_n(isa):
    fn = strided_copy_fn(isa)
    for stride in (1, 2):
        for n in (1, 5, 16, 17, 33):
            src = np.arange(n * stride + 64, dtype=np.float32)
            dst = np.full(n + 40, -1.0, np.float32)
            fn(ptr(dst), ptr(src), n, stride)
            np.testing.assert_array_equal(dst[:n], src[::stride][:n])
            assert (dst[n:] == -1.0).all(), f"stride={stride} n={n} wrote past n"


def conv_ref(x, w, stride, pad):
    """float64 cross-correlation, NCHW / OIHW, symmetric padding."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, C, H, W = x.shape
    M, _, kH, kW = w.shape
    OH, OW = (H - kH) // stride + 1, (W - kW) // stride + 1
    y = np.zeros((N, M, OH, OW))
    for ky in range(kH):
        for kx in range(kW):
            patch = x[:, :, ky:ky + stride * (OH - 1) + 1:stride, kx:kx + stride * (OW - 1) + 1:stride]
            y += np.einsum("nchw,mc->nmhw", patch, w[:, :, ky, kx].astype(np.float64))
    return y, np.einsum("nchw,mc->nmhw", np.abs(x), np.ones((M, C)))  # scale bound


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("algorithm", ["im2col", "patch2vec"])
@pytest.mark.parametrize("shape", [
    # C, H, W, M, k, stride, pad: the last pixel of the image is read (no
    # right padding past it for even W with these strides) or padded
    (3, 23, 23, 8, 7, 2, 3),
    (5, 14, 17, 12, 3, 2, 1),
    (4, 9, 33, 7, 3, 2, 0),
    (2, 8, 40, 9, 1, 2, 0),
    (3, 7, 7, 5, 3, 1, 1),
    (2, 6, 35, 4, 5, 3, 2),
])
def test_unwrapping_reads_inside_the_image(isa, algorithm, shape):
    C, H, W, M, k, s, p = shape
    rng = np.random.default_rng(C * H + W)
    x = guarded(C * H * W).reshape(1, C, H, W)
    x[:] = rng.standard_normal(x.shape).astype(np.float32)
    w = rng.standard_normal((M, C, k, k)).astype(np.float32)
    with lc.use_isa(isa):
        y = lc.conv2d(x, w, stride=s, padding=p, algorithm=algorithm, threads=1)
    ref, _ = conv_ref(x, w, s, p)
    scale = np.abs(w).sum(axis=(1, 2, 3)).max() * np.abs(x).max()
    np.testing.assert_allclose(y, ref, atol=1e-5 * scale, rtol=0)
