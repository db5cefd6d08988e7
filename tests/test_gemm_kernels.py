"""Optional GEMM-family micro-kernel entries (include/leanconv/ukernels.h),
called directly through the extension's exported symbols, against plain
NumPy; edge cases as in tests/test_ukernels.py, with the source and the
destination right before an unreadable page so an over-read or over-write
crashes the test instead of passing.

  lc_f32_strided_copy__<isa>: dst[i*dst_stride + r] = src[i*src_step + r*stride],
  i < rows, r < n, reading and writing only those elements.
  lc_f32_gemm_narrow_16x16__avx512: C (+)= A * B over two 8-row panels of
  packed A (the second a_pstride floats after the first), n <= 16 + 3
  columns, with bias, accumulate and the clamp epilogue (NaN passes).
  lc_f32_gemm_narrow_pf_16x16__avx512: the same with a prefetch cursor,
  bitwise the plain narrow kernel's sums wherever the cursor points.
  lc_f32_gemm_tall_24x16__avx512: the same over three 8-row panels and one
  vector of columns (n <= 16), with a prefetch cursor; bitwise the 8 x 32
  kernel's sums.

Then the patch unwrapping that uses it, end to end: strided and padded
convolutions whose input ends right before an unreadable page, Im2Col and
Patch2Vec on every ISA, against a float64 convolution."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core

from test_ukernels import _keep_alive, assert_close, clamp_ref, guarded

ISAS = lc.available_isas()
COPY_ISAS = [i for i in ISAS if i in ("avx2", "avx512")]
_lib = ctypes.CDLL(_core.__file__)


def strided_copy_fn(isa):
    fn = getattr(_lib, f"lc_f32_strided_copy__{isa}")
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                   ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t)
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
        fn(ptr(dst), 0, ptr(src), 0, 1, n, stride)
        np.testing.assert_array_equal(dst, src[::stride][:n], err_msg=f"n={n}")


@pytest.mark.parametrize("isa", COPY_ISAS)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_strided_copy_rows(isa, stride):
    """Several rows: overlapping source windows one dilation apart (the kx
    taps of a patch) into rows dst_stride apart, the last row's last read the
    last readable float."""
    fn = strided_copy_fn(isa)
    rng = np.random.default_rng(10 + stride)
    for rows, step, n, dst_stride in [(1, 0, 5, 0), (3, 1, 32, 32), (7, 1, 17, 40),
                                      (3, 2, 16, 33), (5, 3, 9, 9), (2, 50, 33, 64)]:
        src = guarded((rows - 1) * step + (n - 1) * stride + 1)
        src[:] = rng.standard_normal(src.size).astype(np.float32)
        sentinel = np.float32(-7.0)
        dst = np.full((rows - 1) * dst_stride + n + 9, sentinel, np.float32)
        fn(ptr(dst), dst_stride, ptr(src), step, rows, n, stride)
        mask = np.ones(dst.size, bool)
        for i in range(rows):
            want = src[i * step:i * step + (n - 1) * stride + 1:stride]
            np.testing.assert_array_equal(dst[i * dst_stride:i * dst_stride + n], want,
                                          err_msg=f"rows={rows} n={n} row {i}")
            mask[i * dst_stride:i * dst_stride + n] = False
        assert (dst[mask] == sentinel).all(), f"rows={rows} n={n}: wrote outside the rows"


@pytest.mark.parametrize("isa", COPY_ISAS)
def test_strided_copy_writes_only_n(isa):
    fn = strided_copy_fn(isa)
    for stride in (1, 2):
        for n in (1, 5, 16, 17, 33):
            src = np.arange(n * stride + 64, dtype=np.float32)
            dst = np.full(n + 40, -1.0, np.float32)
            fn(ptr(dst), 0, ptr(src), 0, 1, n, stride)
            np.testing.assert_array_equal(dst[:n], src[::stride][:n])
            assert (dst[n:] == -1.0).all(), f"stride={stride} n={n} wrote past n"


class Epilogue(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_float), ("hi", ctypes.c_float), ("clamp", ctypes.c_int)]


NARROW = {"avx512": ("lc_f32_gemm_narrow_16x16__avx512", 8, 16 + 3)}  # name, MR, max n
NARROW_ISAS = [i for i in ISAS if i in NARROW]


# the wide tile (lc_gemm_wide_fn): one MR panel, wide_nr .. wide_nr + 3 columns
WIDE = {"avx512": ("lc_f32_gemm_wide_8x48__avx512", 8, 48)}  # name, MR, wide_nr
WIDE_ISAS = [i for i in ISAS if i in WIDE]


def narrow_case(isa, m, n, k, ldb, ldc, flags, with_bias, clamp, seed, nan=False, gap=0,
                kernel=None, extra=()):
    """C (+)= A B through a narrow kernel (two MR panels, a_pstride) or, with
    kernel=(name, mr), a one-panel kernel of the lc_gemm_ukernel_fn form, or
    with kernel=(name, mr, True) another of the panels form (`extra`
    arguments after its own: a prefetch cursor).  Returns C."""
    # the guarded buffers made here die with this call's arrays, not with the
    # process: every one is a mapping, and a test process has 65530 of them
    keep = len(_keep_alive)
    name, mr, strided = (kernel + (False,))[:3] if kernel else NARROW[isa][:2] + (True,)
    fn = getattr(_lib, name)
    fn.restype = None
    r = np.random.default_rng(seed)
    A = r.standard_normal((m, k)).astype(np.float32)
    # the panels holding rows < m, k groups of MR floats each, `gap` floats
    # apart, the last right before an unreadable page (a read of a panel
    # past m crashes); rows >= m are zero
    pstride = k * mr + gap
    panels = -(-m // mr)
    a = guarded((panels - 1) * pstride + k * mr)
    for q in range(panels):
        rows = A[q * mr:(q + 1) * mr]
        a[q * pstride:q * pstride + k * mr].reshape(k, mr)[:, :rows.shape[0]] = rows.T
    b = guarded((k - 1) * ldb + n)
    b[:] = r.standard_normal(b.size).astype(np.float32)
    if nan:
        b[r.integers(0, b.size)] = np.nan
    B = np.lib.stride_tricks.as_strided(b, (k, n), (ldb * 4, 4)).astype(np.float64)
    sentinel = np.float32(12345.0)
    c = np.full(m * ldc + 7, sentinel, np.float32)
    C0 = r.standard_normal((m, n)).astype(np.float32)
    for i in range(m):
        c[i * ldc:i * ldc + n] = C0[i]
    bias = r.standard_normal(m).astype(np.float32) if with_bias else None
    ep = Epilogue(*(clamp if clamp else (0.0, 0.0)), 1 if clamp else 0)
    a_args = (ptr(a), ctypes.c_size_t(pstride)) if strided else (ptr(a),)
    fn(ctypes.c_size_t(m), ctypes.c_size_t(n), ctypes.c_size_t(k), *a_args,
       ptr(b), ctypes.c_size_t(ldb), ptr(c), ctypes.c_size_t(ldc),
       ptr(bias) if bias is not None else None, ctypes.byref(ep), ctypes.c_uint(flags), *extra)
    prod = A.astype(np.float64) @ B
    scale = np.abs(A).astype(np.float64) @ np.abs(B)
    if flags & _core.GEMM_ACCUMULATE:
        want, scale = C0 + prod, scale + np.abs(C0)
    else:
        base = bias.astype(np.float64)[:, None] if bias is not None else 0.0
        want, scale = prod + base, scale + np.abs(base)
    if flags & _core.GEMM_FINAL:
        want = clamp_ref(want, clamp)
    got = np.stack([c[i * ldc:i * ldc + n] for i in range(m)])
    assert_close(got, want, scale, 1e-5, f"{name} m={m} n={n} k={k} flags={flags}")
    mask = np.ones(c.size, bool)
    for i in range(m):
        mask[i * ldc:i * ldc + n] = False
    assert np.all(c[mask] == sentinel), f"{name} wrote outside the tile"
    del _keep_alive[keep:]
    return c


@pytest.mark.parametrize("isa", NARROW_ISAS)
def test_gemm_narrow_edges(isa):
    _, mr, nmax = NARROW[isa]
    seed = 0
    for m in sorted({1, mr - 1, mr, mr + 1, 2 * mr - 1, 2 * mr}):
        for n in range(1, nmax + 1):
            for k in (1, 2, 3, 5, 260):
                seed += 1
                narrow_case(isa, m, n, k, n, n, 0, False, None, seed)


@pytest.mark.parametrize("isa", NARROW_ISAS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_gemm_narrow_flags_strides_bias(isa, flags):
    _, mr, nmax = NARROW[isa]
    seed = 1000 * flags
    for m in (1, mr + 3, 2 * mr):
        for n in (1, 4, 7, 8, 15, 16, 17, nmax):
            for k in (1, 7, 33):
                for with_bias in (False, True):
                    seed += 1
                    narrow_case(isa, m, n, k, n + 33, n + 11, flags, with_bias, (-0.5, 0.75),
                                seed, gap=24)


@pytest.mark.parametrize("isa", NARROW_ISAS)
@pytest.mark.parametrize("clamp", [(0.0, float("inf")), (0.0, 6.0), (-1.0, 1.0)])
def test_gemm_narrow_clamp_passes_nan(isa, clamp):
    _, mr, nmax = NARROW[isa]
    for i, (m, n) in enumerate([(2 * mr, 16), (2 * mr - 1, nmax), (mr + 1, 5), (3, 17)]):
        narrow_case(isa, m, n, 9, n + 2, n, _core.GEMM_FINAL, True, clamp, 77 + i, nan=True)


def wide_case(isa, m, n, k, ldb, ldc, flags, with_bias, clamp, seed, nan=False):
    name, mr, _ = WIDE[isa]
    narrow_case(isa, m, n, k, ldb, ldc, flags, with_bias, clamp, seed, nan, kernel=(name, mr))


@pytest.mark.parametrize("isa", WIDE_ISAS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_gemm_wide_edges(isa, flags):
    """Every row count and tail width, B and C ending right before an
    unreadable page (ldb = ldc = n) or with gaps; bias, accumulate, clamp."""
    _, mr, wn = WIDE[isa]
    seed = 5000 + 1000 * flags
    for m in range(1, mr + 1):
        for n in range(wn, wn + 4):
            for k in ((1, 2, 5, 260) if flags == 0 else (1, 7)):
                for ld, with_bias in ((0, False), (9, True)):
                    seed += 1
                    wide_case(isa, m, n, k, n + ld, n + ld, flags, with_bias, (-0.5, 0.75), seed)


@pytest.mark.parametrize("isa", WIDE_ISAS)
@pytest.mark.parametrize("clamp", [(0.0, float("inf")), (-1.0, 1.0)])
def test_gemm_wide_clamp_passes_nan(isa, clamp):
    _, mr, wn = WIDE[isa]
    for i, (m, n) in enumerate([(mr, wn), (mr - 1, wn + 1), (3, wn + 3)]):
        wide_case(isa, m, n, 9, n + 2, n, _core.GEMM_FINAL, True, clamp, 97 + i, nan=True)


# the prefetching kernels (lc_gemm_pf_fn): the plain kernel's results, bit for
# bit, wherever the cursor points (prefetches never fault)
PF = {"avx2": ("lc_f32_gemm_pf_6x16__avx2", "lc_f32_gemm_6x16__avx2", 6, 16),
      "avx512": ("lc_f32_gemm_pf_8x32__avx512", "lc_f32_gemm_8x32__avx512", 8, 32)}
PF_ISAS = [i for i in ISAS if i in PF]


@pytest.mark.parametrize("isa", PF_ISAS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_gemm_pf_matches_plain(isa, flags):
    """Every row count, full and partial widths, B and C right before an
    unreadable page; the cursor over a guarded buffer (rows ending at its
    last float), past it into the unreadable page, or at nothing (0 rows);
    more cursor rows than k steps too."""
    pf_name, name, mr, nr = PF[isa]
    _cursor_matches_plain(isa, (pf_name, mr), (name, mr), range(1, mr + 1),
                          (1, nr // 2, nr - 1, nr), 64, 7000 + 1000 * flags, flags)


def _cursor_matches_plain(isa, pf_kernel, plain_kernel, ms, ns, ld, seed, flags):
    """The kernel with a prefetch cursor against the plain one, bit for bit:
    the cursor over a guarded buffer (rows ending at its last float), past it
    into the unreadable page, at nothing (0 rows), or with more rows than k
    steps; B and C right before an unreadable page or with gaps."""
    rows_end = guarded(3 * 64 + 5)
    base = rows_end.ctypes.data
    unreadable = base + rows_end.size * 4  # the PROT_NONE page on Linux
    for m in ms:
        for n in ns:
            for k in ((1, 3, 64, 257) if flags == 0 else (1, 19)):
                for pf, pld, rows in ((base + 5 * 4, ld, 3), (unreadable, 16, k), (None, 0, 0),
                                      (base, 1, 2 * k + 1)):
                    seed += 1
                    ld_b = n + (seed % 3) * 7
                    args = (isa, m, n, k, ld_b, ld_b, flags, seed % 2 == 0, (-0.5, 0.75), seed)
                    plain = narrow_case(*args, kernel=plain_kernel)
                    got = narrow_case(*args, kernel=pf_kernel,
                                      extra=(ctypes.c_void_p(pf), ctypes.c_size_t(pld),
                                             ctypes.c_size_t(rows)))
                    assert np.array_equal(plain, got, equal_nan=True), (
                        f"{pf_kernel[0]} m={m} n={n} k={k} rows={rows}")


@pytest.mark.parametrize("isa", PF_ISAS)
def test_gemm_pf_clamp_passes_nan(isa):
    pf_name, _, mr, nr = PF[isa]
    keep = guarded(64)
    for i, (m, n) in enumerate([(mr, nr), (mr - 1, nr), (3, nr - 2)]):
        narrow_case(isa, m, n, 9, n + 2, n, _core.GEMM_FINAL, True, (0.0, 6.0), 31 + i, nan=True,
                    kernel=(pf_name, mr),
                    extra=(ctypes.c_void_p(keep.ctypes.data), ctypes.c_size_t(8), ctypes.c_size_t(5)))


# the wide tile with a prefetch cursor (lc_gemm_pf_fn form): the plain wide
# tile's results, bit for bit, wherever the cursor points
WIDE_PF = {"avx512": ("lc_f32_gemm_wide_pf_8x48__avx512", 8, 48)}  # name, MR, wide_nr
WIDE_PF_ISAS = [i for i in ISAS if i in WIDE_PF]


@pytest.mark.parametrize("isa", WIDE_PF_ISAS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_gemm_wide_pf_matches_plain(isa, flags):
    pf_name, mr, wn = WIDE_PF[isa]
    _cursor_matches_plain(isa, (pf_name, mr), WIDE[isa][:2], (1, mr - 1, mr),
                          range(wn, wn + 4), 32, 9000 + 1000 * flags, flags)


# the narrow kernel with a prefetch cursor (lc_gemm_narrow_pf_fn): the plain
# narrow kernel's results, bit for bit, wherever the cursor points
NARROW_PF = {"avx512": "lc_f32_gemm_narrow_pf_16x16__avx512"}
NARROW_PF_ISAS = [i for i in ISAS if i in NARROW_PF]


@pytest.mark.parametrize("isa", NARROW_PF_ISAS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_gemm_narrow_pf_matches_plain(isa, flags):
    """One and two panels (the second's rows past m unread), the column-wise,
    vector and vector-plus-tail widths."""
    name, mr, nmax = NARROW[isa]
    _cursor_matches_plain(isa, (NARROW_PF[isa], mr, True), (name, mr, True),
                          (1, mr, mr + 1, 2 * mr - 1, 2 * mr), (3, 8, 15, 16, 17, nmax), 32,
                          11000 + 1000 * flags, flags)


# the tall tile (lc_gemm_tall_fn): three MR panels, one vector of columns
TALL = {"avx512": ("lc_f32_gemm_tall_24x16__avx512", "lc_f32_gemm_8x32__avx512", 8, 16)}
TALL_ISAS = [i for i in ISAS if i in TALL]


def tall_case(isa, m, n, k, ldb, ldc, flags, with_bias, clamp, seed, nan=False, gap=0,
              cursor=(None, 0, 0)):
    """narrow_case through the tall kernel (three MR panels, the prefetch
    cursor (address, row stride, rows))."""
    name, _, mr, _ = TALL[isa]
    pf, pf_ld, pf_rows = cursor
    return narrow_case(isa, m, n, k, ldb, ldc, flags, with_bias, clamp, seed, nan, gap,
                       kernel=(name, mr, True),
                       extra=(ctypes.c_void_p(pf), ctypes.c_size_t(pf_ld), ctypes.c_size_t(pf_rows)))


@pytest.mark.parametrize("isa", TALL_ISAS)
def test_gemm_tall_edges(isa):
    """Every row count (panels past m unread), every width up to one vector
    (masked), k = 1 and odd k; B and C right before an unreadable page."""
    _, _, mr, nmax = TALL[isa]
    seed = 20000
    for m in (1, mr - 1, mr, mr + 1, 2 * mr, 2 * mr + 1, 3 * mr - 1, 3 * mr):
        for n in range(1, nmax + 1):
            for k in ((1, 2, 260) if n in (1, nmax - 1, nmax) else (3,)):
                seed += 1
                tall_case(isa, m, n, k, n, n, 0, False, None, seed)


@pytest.mark.parametrize("isa", TALL_ISAS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_gemm_tall_flags_strides_cursor(isa, flags):
    """Bias, accumulate, clamp, strides and panel gaps; the prefetch cursor
    over a guarded buffer, into the unreadable page past it, at nothing, or
    with more rows than k steps: the same bits as without it, and as the
    MR x NR kernel's vector columns row panel by row panel (one FMA chain
    each)."""
    _, plain_name, mr, nmax = TALL[isa]
    plain = getattr(_lib, plain_name)
    plain.restype = None
    rows_end = guarded(3 * 64 + 5)
    unreadable = rows_end.ctypes.data + rows_end.size * 4
    seed = 30000 + 1000 * flags
    for m in (1, mr + 3, 2 * mr + 1, 3 * mr):
        for n in (1, 7, nmax):
            for k in (1, 33):
                for with_bias in (False, True):
                    seed += 1
                    ldb, ldc = n + 33, n + 11
                    args = (isa, m, n, k, ldb, ldc, flags, with_bias, (-0.5, 0.75), seed)
                    ref = tall_case(*args, gap=24)
                    cursors = ((rows_end.ctypes.data + 20, 64, 3), (unreadable, 16, k),
                               (rows_end.ctypes.data, 1, 2 * k + 1))
                    for cursor in cursors[seed % 3:seed % 3 + 1]:
                        got = tall_case(*args, gap=24, cursor=cursor)
                        assert np.array_equal(ref, got, equal_nan=True), (m, n, k, cursor)
                        # the cursor as C rows, asked for to write (LC_GEMM_PF_WRITE)
                        write = args[:6] + (flags | _core.GEMM_PF_WRITE,) + args[7:]
                        got = tall_case(*write, gap=24, cursor=cursor)
                        assert np.array_equal(ref, got, equal_nan=True), (m, n, k, cursor, "write")
                    if n < 4:  # the 8 x 32 kernel takes 1-3 columns another way
                        continue
                    # the same tile, MR rows at a time, through the plain kernel
                    want = np.stack([ref[i * ldc:i * ldc + n] for i in range(m)])
                    r = np.random.default_rng(seed)
                    A = r.standard_normal((m, k)).astype(np.float32)
                    b = r.standard_normal((k - 1) * ldb + n).astype(np.float32)
                    C0 = r.standard_normal((m, n)).astype(np.float32)
                    bias = r.standard_normal(m).astype(np.float32) if with_bias else None
                    ep = Epilogue(-0.5, 0.75, 1)
                    c = np.zeros(m * ldc, np.float32)
                    for i in range(m):
                        c[i * ldc:i * ldc + n] = C0[i]
                    for q in range(0, m, mr):
                        rows = min(mr, m - q)
                        ap = np.zeros((k, mr), np.float32)
                        ap[:, :rows] = A[q:q + rows].T
                        bq = None if bias is None else np.ascontiguousarray(bias[q:q + rows])
                        cq = c[q * ldc:]
                        plain(ctypes.c_size_t(rows), ctypes.c_size_t(n), ctypes.c_size_t(k),
                              ptr(ap), ptr(b), ctypes.c_size_t(ldb), ptr(cq),
                              ctypes.c_size_t(ldc), ptr(bq) if bq is not None else None,
                              ctypes.byref(ep), ctypes.c_uint(flags))
                    got = np.stack([c[i * ldc:i * ldc + n] for i in range(m)])
                    assert np.array_equal(got, want), f"tall != {plain_name} m={m} n={n} k={k}"


@pytest.mark.parametrize("isa", TALL_ISAS)
@pytest.mark.parametrize("clamp", [(0.0, float("inf")), (0.0, 6.0), (-1.0, 1.0)])
def test_gemm_tall_clamp_passes_nan(isa, clamp):
    _, _, mr, nmax = TALL[isa]
    for i, (m, n) in enumerate([(3 * mr, nmax), (3 * mr - 1, nmax - 1), (mr + 1, 5), (3, 1)]):
        tall_case(isa, m, n, 9, n + 2, n, _core.GEMM_FINAL, True, clamp, 177 + i, nan=True)


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


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [
    # C, H, W, M, k, stride, pad: P = 48 (one wide tile), 49 and 51 (+ tail),
    # then beyond the wide tile's rows: 52, 99, 196, 256, 289; M not a
    # multiple of MR
    (16, 6, 8, 13, 1, 1, 0), (24, 7, 7, 9, 1, 1, 0), (5, 3, 17, 8, 1, 1, 0),
    (7, 4, 13, 17, 1, 1, 0), (6, 11, 9, 20, 3, 1, 1), (9, 14, 14, 11, 1, 1, 0),
    (4, 32, 32, 7, 3, 2, 1), (3, 17, 17, 6, 1, 1, 0),
])
def test_wide_tile_layers(isa, shape):
    """Im2Col layers whose rows go through the wide tile where the ISA has
    one: against float64, with bias and ReLU, and bitwise equal at 1, 2 and
    3 threads (which kernel takes a column depends on the image only)."""
    C, H, W, M, k, s, p = shape
    rng = np.random.default_rng(C * H * W + M)
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, k, k)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    with lc.use_isa(isa):
        ys = [lc.conv2d(x, w, b, stride=s, padding=p, algorithm="im2col", activation="relu",
                        threads=t) for t in (1, 2, 3)]
    ref, scale = conv_ref(x, w, s, p)
    ref = np.maximum(ref + b[None, :, None, None], 0)
    tol = 1e-5 * (np.abs(w).max() * scale.max() + np.abs(b).max())
    np.testing.assert_allclose(ys[0], ref, atol=tol, rtol=0)
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])
