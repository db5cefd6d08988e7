"""A fully connected layer, y = act(x W^T + b (+ res)), in leanconv's C on
leanconv's threads: on a few rows (a classifier head, at most MAX_ROWS) the
gemv of kernels/dense.c, on many (a transformer's tokens) the GEMM of
kernels/token_gemm.c.  Shared by leanconv.onnx's Gemm/MatMul step and the frozen
torch model's FrozenDense, so both pack, check and fall back the same way.

The weights W (N x K) are stored once, in the C kernel's 16-row panels
(`pack`): panel p holds rows 16p..16p+15, k-major, so the kernel streams them
front to back with one broadcast of x[k] per 16 outputs.  Nothing keeps the
raw matrix: other inputs (more rows, another dtype) are computed from the
panels (`panels` is a view: (P, K, 16)), at BLAS speed but without the C
kernel's thread split."""
from __future__ import annotations

import math

import numpy as np

from leanconv import _blas_split, _core, _epilogue, _isa, _scratch, _threads

MAX_ROWS = 8    # more rows than this: a real GEMM, BLAS's (or torch's) job
PANEL = 16      # rows of W per panel (lc_se_pack)


def _packed_buffer(floats):
    """A new float32 array for packed panels, 64-byte aligned: the kernels'
    vector loads of a panel row then never straddle two cache lines (NumPy's
    large arrays start 16 bytes into a page: ViT-B's 197 x 3072 x 768 token
    GEMM ran at 130 GFLOP/s from such panels, 140 from aligned ones; Swin-T's
    3136 x 384 x 96 126 -> 140, Intel Xeon, 1 thread)."""
    return _scratch.aligned_empty(4 * floats).view(np.float32)


def pack(w, capacity=0):
    """W (N x K) float32 in the C kernel's panels (a new array of at least
    `capacity` floats: room for the token GEMM's panels, to_tokens)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    floats = _core.se_packed_floats(*w.shape)
    out = _packed_buffer(max(floats, capacity))
    _core.se_pack(w.reshape(-1), out[:floats], *w.shape)
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


def pack_rows(read, n, k, scale=1.0, chunk_bytes=1 << 18, capacity=0):
    """pack() of W (n x k) given as read(start, stop) -> rows [start, stop) of
    it (float32), a slice of whole panels at a time: W is never whole in
    memory beside its packed copy.  Rows are scaled by `scale` first; the
    array holds at least `capacity` floats, as pack's.  The
    slice (256 KiB) is all that packing holds beyond the packed copy: at 1 MiB
    it was a third of a small model's plan while its classifier was packed."""
    out = _packed_buffer(max(_core.se_packed_floats(n, k), capacity))
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


def pack_columns(read, n, k, scale=1.0, chunk_bytes=1 << 18, capacity=0):
    """pack() of W (n x k) given as read(start, stop) -> rows [start, stop)
    of W^T (k x n, float32: a MatMul's constant as stored), a slice of W^T's
    rows at a time, each written into every panel's share of it (panels(),
    the last one's rows past n zero): W^T is never whole in memory beside
    the packing (Swin-T's largest MatMul constant, 9.4 MB, was prepare's
    peak above the plan).  scale and capacity as in pack_rows."""
    floats = _core.se_packed_floats(n, k)
    full, tail = divmod(n, PANEL)
    count = full + (tail > 0)
    if floats != count * PANEL * k:
        raise ValueError(f"pack_columns: {floats} packed floats for {n} x {k} is not whole panels")
    out = _packed_buffer(max(floats, capacity))
    view = out[:floats].reshape(count, k, PANEL)
    step = max(1, chunk_bytes // (4 * n))
    for start in range(0, k, step):
        stop = min(k, start + step)
        w = np.asarray(read(start, stop), dtype=np.float32)
        if w.size != (stop - start) * n:
            raise ValueError(f"pack_columns: read({start}, {stop}) gave shape {w.shape}")
        w = w.reshape(stop - start, n)
        if scale != 1.0:
            w = w * np.float32(scale)
        view[:full, start:stop] = w[:, :full * PANEL].reshape(stop - start, full, PANEL) \
            .transpose(1, 0, 2)
        if tail:
            view[full, start:stop, :tail] = w[:, full * PANEL:]
            view[full, start:stop, tail:] = 0.0
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


def bind(x, y, wp, b, n_out, threads, activation=None):
    """run_into's C call fixed to these buffers (a _core.BoundDense, for a
    compiled schedule's C loop), with the activation applied to each panel
    of outputs as it is written, or None where `c_runs` refuses them."""
    if not c_runs(x, y, x.shape[-1] if x.ndim == 2 else -1):
        return None
    return _core.BoundDense(x.reshape(-1), y.reshape(-1), x.shape[0], n_out, x.shape[1], wp, b,
                            _threads.resolve(threads), _isa.isa_id(),
                            _epilogue.parse(activation))


def gemv_rows(wp, n_out, k):
    """A copy of W (n_out x k) from the gemv's panels at the start of wp."""
    gemv = wp[:_core.se_packed_floats(n_out, k)]
    return panels(gemv, k).transpose(0, 2, 1).reshape(-1, k)[:n_out].copy()


def to_rows(wp, n_out, k):
    """Rewrite the panels in wp as W (n_out x k) row-major in its first
    n_out * k floats, and return that view.  For a layer whose inputs have
    many rows (a transformer's tokens): BLAS reads W's transpose as it is,
    where the panels need a transposed copy per call (ViT-B's 768 x 3072:
    9.4 MB, ~3.6 of its fc1's 13 ms).  The C kernel cannot read it after."""
    w = gemv_rows(wp, n_out, k)
    rows = wp[:n_out * k].reshape(n_out, k)
    rows[...] = w
    return rows


def to_tokens(wp, n_out, k, isa):
    """Rewrite the panels in wp as the token GEMM's panels for ISA `isa`
    (_core.token_pack) in its first floats, and return that view; None,
    leaving wp as it was, when they need more floats than wp holds (n_out
    not a whole number of both panel widths: rows_apply then).  For inputs
    of many rows: the gemv's 16-row panels would run them one row at a
    time, and the C kernel cannot read wp after."""
    need = _core.token_packed_floats(n_out, k, isa)
    if need > wp.size:
        return None
    # a run of lcm(widths) rows takes the same floats in both layouts: each
    # run is copied out (one run of scratch, not W: ViT-B's 9.4 MB fc1 made
    # the first run's peak 9 MB above the plan) and packed back over itself
    step = math.lcm(_core.token_packed_floats(1, 1, isa), PANEL)
    gemv_end = _core.se_packed_floats(n_out, k)
    scratch = np.empty(step * k, np.float32)
    for r0 in range(0, n_out, step):
        rows = min(step, n_out - r0)
        read = min((r0 + step) * k, gemv_end) - r0 * k
        np.copyto(scratch[:read], wp[r0 * k:r0 * k + read])
        w = panels(scratch[:read], k).transpose(0, 2, 1).reshape(-1, k)[:rows]
        _core.token_pack(w, wp[r0 * k:r0 * k + _core.token_packed_floats(rows, k, isa)], isa)
    return wp[:need]


def token_ready(x, y, k):
    """True when the token GEMM takes x -> y as they are: float32, C-contiguous,
    rows of k (any leading shape)."""
    return x.dtype == y.dtype == np.float32 and x.size and x.shape[-1] == k and \
        x.flags.c_contiguous and y.flags.c_contiguous and y.size // y.shape[-1] == x.size // k


def token_bind(x, y, tp, b, res, activation, n_out, threads, isa):
    """The token GEMM's C call y = act(x W^T + b (+ res)) fixed to these
    buffers (a _core.BoundTokenGemm: it runs in a lent workspace), or None
    where token_ready refuses them or res is not y's shape and contiguous."""
    k = x.shape[-1]
    if not token_ready(x, y, k) or (res is not None and (
            res.shape != y.shape or res.dtype != np.float32 or not res.flags.c_contiguous)):
        return None
    return _core.BoundTokenGemm(x.reshape(-1), y.reshape(-1), x.size // k, k, n_out, tp, b,
                                None if res is None else res.reshape(-1),
                                _epilogue.parse(activation), _threads.resolve(threads), isa)


def weights_t(wp, n_out, k, isa=None):
    """W^T (k x n_out) for BLAS from panels: the gemv's (isa None) or the
    token GEMM's for ISA `isa` (the same k-major layout, another width)."""
    width = PANEL if isa is None else _core.token_packed_floats(1, 1, isa)
    return wp.reshape(-1, k, width).transpose(1, 0, 2).reshape(k, -1)[:, :n_out]


def epilogue_after(y, b, res, activation, threads=None):
    """y = act(y + b + res) in place, for the paths whose GEMM does not take
    the epilogue (b and res may be None; res broadcasts to y)."""
    if b is not None:
        y += b
    if res is not None or activation is not None:
        if res is not None and (res.shape != y.shape or res.dtype != y.dtype):
            y += res
            res = None
        _epilogue.activate(y, activation, residual=res, out=y, threads=threads)
    return y


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
