"""A fully connected layer on a few rows -- a classifier head, y = x W^T + b
for x of at most MAX_ROWS rows -- in leanconv's C (kernels/dense.c) on
leanconv's threads.  Shared by leanconv.onnx's Gemm/MatMul step and the frozen
torch model's FrozenDense, so both pack, check and fall back the same way.

The weights W (N x K) are stored once, in the C kernel's 16-row panels
(`pack`): panel p holds rows 16p..16p+15, k-major, so the kernel streams them
front to back with one broadcast of x[k] per 16 outputs.  Nothing keeps the
raw matrix: other inputs (more rows, another dtype) are computed from the
panels (`panels` is a view: (P, K, 16)), at BLAS speed but without the C
kernel's thread split."""
from __future__ import annotations

import numpy as np

from leanconv import _blas_split, _core, _isa, _threads

MAX_ROWS = 8    # more rows than this: a real GEMM, BLAS's (or torch's) job
PANEL = 16      # rows of W per panel (lc_se_pack)


def pack(w):
    """W (N x K) float32 in the C kernel's panels (a new array)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    out = np.empty(_core.se_packed_floats(*w.shape), np.float32)
    _core.se_pack(w.reshape(-1), out, *w.shape)
    return out


def pack_in_place(w):
    """pack() of W (n x k, float32, C-contiguous, n a whole number of panels)
    into W's own memory, which then holds the panels (returned: a flat view
    of it).  Panel p takes exactly the floats of rows 16p..16p+15, so each is
    copied out (one panel of scratch) and packed back over them: a head is
    never held twice while it is packed (VGG-11's 411 MB classifier made
    freeze's peak 1.4x the stock process's).  None when W cannot be packed so
    (n not a multiple of PANEL, not contiguous float32): pack() it."""
    if not (isinstance(w, np.ndarray) and w.dtype == np.float32 and w.ndim == 2 and
            w.flags.c_contiguous and w.flags.writeable and w.shape[0] % PANEL == 0 and
            w.size and _core.se_packed_floats(*w.shape) == w.size):
        return None
    n, k = w.shape
    flat = w.reshape(-1)
    scratch = np.empty((PANEL, k), np.float32)
    for start in range(0, n, PANEL):
        np.copyto(scratch, w[start:start + PANEL])
        _core.se_pack(scratch.reshape(-1), flat[start * k:(start + PANEL) * k], PANEL, k)
    return flat


def pack_rows(read, n, k, scale=1.0, chunk_bytes=1 << 18):
    """pack() of W (n x k) given as read(start, stop) -> rows [start, stop) of
    it (float32), a slice of whole panels at a time: W is never whole in
    memory beside its packed copy.  Rows are scaled by `scale` first.  The
    slice (256 KiB) is all that packing holds beyond the packed copy: at 1 MiB
    it was a third of a small model's plan while its classifier was packed."""
    out = np.empty(_core.se_packed_floats(n, k), np.float32)
    step = max(PANEL, chunk_bytes // (4 * k) // PANEL * PANEL)
    for start in range(0, n, step):
        stop = min(n, start + step)
        w = np.ascontiguousarray(read(start, stop), dtype=np.float32)
        if w.size == (stop - start) * k:
            w = w.reshape(stop - start, k)   # (a 1x1 Conv's (rows, k, 1, 1))
        if w.shape != (stop - start, k):
            raise ValueError(f"pack_rows: read({start}, {stop}) gave shape {w.shape}")
        if scale != 1.0:
            w = w * np.float32(scale)
        part = out[start * k:start * k + _core.se_packed_floats(stop - start, k)]
        _core.se_pack(w.reshape(-1), part, stop - start, k)
    return out


def panels(wp, k):
    """The packed weights as (P, K, 16): panels(wp, K)[p, k, j] = W[16p + j, k]."""
    return wp.reshape(-1, k, PANEL)


def c_runs(x, y, k):
    """True when the C kernel takes x -> y: float32, 2-D, C-contiguous rows of
    k, at most MAX_ROWS of them."""
    return x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == k and \
        0 < x.shape[0] <= MAX_ROWS and x.flags.c_contiguous and y.flags.c_contiguous


def run_into(x, y, wp, b, n_out, threads):
    """y = x W^T (+ b) in C; x, y as `c_runs` accepts, b float32 (n_out,) or None."""
    _core.dense(x.reshape(-1), y.reshape(-1), x.shape[0], n_out, x.shape[1], wp, b,
                _threads.resolve(threads), _isa.isa_id())


def bind(x, y, wp, b, n_out, threads):
    """run_into's C call fixed to these buffers (a _core.BoundDense, for a
    compiled schedule's C loop), or None where `c_runs` refuses them."""
    if not c_runs(x, y, x.shape[-1] if x.ndim == 2 else -1):
        return None
    return _core.BoundDense(x.reshape(-1), y.reshape(-1), x.shape[0], n_out, x.shape[1], wp, b,
                            _threads.resolve(threads), _isa.isa_id())


def numpy_apply(x, wp, b, n_out, out=None):
    """y = x W^T (+ b) for any x (..., K) NumPy takes, from the panels (a
    transposed copy of W per call: see to_rows for inputs of many rows)."""
    k = x.shape[-1]
    return rows_apply(x, panels(wp, k).transpose(1, 0, 2).reshape(k, -1)[:, :n_out], b, out)


def to_rows(wp, n_out, k):
    """Rewrite the panels in wp as W (n_out x k) row-major in its first
    n_out * k floats, and return that view.  For a layer whose inputs have
    many rows (a transformer's tokens): BLAS reads W's transpose as it is,
    where the panels need a transposed copy per call (ViT-B's 768 x 3072:
    9.4 MB, ~3.6 of its fc1's 13 ms).  The C kernel cannot read it after."""
    w = panels(wp, k).transpose(0, 2, 1).reshape(-1, k)[:n_out].copy()
    rows = wp[:n_out * k].reshape(n_out, k)
    rows[...] = w
    return rows


def rows_apply(x, wt, b, out=None, threads=1):
    """y = x wt (+ b), wt (K x N) any view BLAS takes; into `out` (shape
    x.shape[:-1] + (N,)) when given.  The rows of a C-contiguous x go to
    BLAS as one matrix: np.matmul runs an N-D x as one GEMM per leading
    index, and Swin Transformer's 1x14x14x384 by 384x1536 ran 1.5x slower so
    (3.5 against 2.2 ms, OpenBLAS, 1 thread, Zen 4).  Rows of a 2-D product
    spread over `threads` (_blas_split)."""
    k, n_out = wt.shape
    rows = x.reshape(-1, k) if x.ndim > 2 and x.flags.c_contiguous else x
    direct = out is not None and out.flags.c_contiguous
    y = out.reshape(rows.shape[:-1] + (n_out,)) if direct else None   # a view: contiguous
    if rows.ndim == 2 and rows.dtype == wt.dtype == np.float32:
        y = np.empty((rows.shape[0], n_out), np.float32) if y is None else y
        _blas_split.matmul_into(rows, wt, y, threads)
    elif y is None:
        y = np.matmul(rows, wt)
    else:
        np.matmul(rows, wt, out=y)
    if b is not None:
        y += b
    if out is None:
        return y.reshape(x.shape[:-1] + (n_out,))
    if not direct:
        np.copyto(out, y.reshape(out.shape))
    return out
