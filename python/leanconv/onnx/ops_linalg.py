"""Gemm, MatMul and Einsum.

A classifier -- Gemm (or MatMul) of a few float32 rows by a constant matrix,
plus a constant bias -- runs in C on leanconv's threads (kernels/dense.c):
the matrix is packed once at prepare (alpha folded in; the packed copy is
the constant the step reads, so the raw one is dropped and the memory plan
counts the packed bytes), beta * C becomes the bias.  Everything else is
NumPy (its BLAS does the work).  Transposes stay views there: BLAS takes the
transpose flag itself, and a (N, K) weight of transB=1 keeps each output a
dot product of two contiguous rows, which rounds every output the same way as
the usual runtimes do."""
from __future__ import annotations

import threading

import numpy as np

from leanconv import _blas_split, _bound_pool, _dense, _threads
from leanconv.onnx.program import Step


def build_gemm(node, ctx):
    node.allow("alpha", "beta", "transA", "transB", "broadcast")
    alpha = float(node.attr("alpha", 1.0))
    beta = float(node.attr("beta", 1.0))
    ta, tb = int(node.attr("transA", 0)), int(node.attr("transB", 0))
    if not ta:
        c = ctx.const(node.input(2))
        rows = ctx.constants.row_reader(node.input(1)) if tb else None
        meta = ctx.constants.meta(node.input(1)) if rows is not None else None
        if rows is not None and len(meta[0]) == 2 and meta[1] == np.float32:
            # W as stored (transB): packed from the file a slice at a time
            step = _dense_step(node, ctx, _RowSource(meta[0], rows), alpha, c, beta)
        else:
            b = _matrix(ctx, node.input(1))
            step = _dense_step(node, ctx, b if b is None or tb else b.T, alpha, c, beta)
        if step is not None:
            return step

    def gemm_into(outs, a, b, c=None):
        y = outs[0]
        np.matmul(a.T if ta else a, b.T if tb else b, out=y)
        if alpha != 1.0:
            y *= y.dtype.type(alpha)
        if c is not None and beta != 0.0:
            if beta != 1.0:
                y += c * c.dtype.type(beta)
            else:
                y += c

    def gemm(a, b, c=None):
        y = np.empty((a.shape[1 if ta else 0], b.shape[0 if tb else 1]),
                     dtype=np.result_type(a, b))
        gemm_into([y], a, b, c)
        return (y,)
    return Step(node, gemm, into=gemm_into, blas=True)


def build_matmul(node, ctx):
    node.allow()
    b = _matrix(ctx, node.input(1))
    step = _dense_step(node, ctx, None if b is None or b.ndim != 2 else b.T, 1.0, None, 0.0)
    if step is not None:
        return step
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def matmul_into(outs, a, b):
        y = outs[0]
        if a.ndim == b.ndim >= 3 and a.dtype == b.dtype == y.dtype == np.float32 and \
                y.shape == a.shape[:-1] + b.shape[-1:]:
            _blas_split.batched_matmul_into(a, b, y, _threads.resolve(settings.threads))
        else:
            np.matmul(a, b, out=y)
    return Step(node, lambda a, b: (np.asarray(np.matmul(a, b)),), blas=True, into=matmul_into)


def _matrix(ctx, name):
    """A constant input's value (read once: the packed copy replaces it), or
    None when it is not a constant."""
    return ctx.constants.read_once(name)


class _RowSource:
    """A float32 matrix in the model file, read by rows when packed."""
    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, shape, read):
        self.shape, self.read = tuple(shape), read


def _dense_step(node, ctx, w, alpha, c, beta):
    """The C step for y = alpha * A W^T + beta * c with W (N x K) a constant
    float32 matrix and c a constant of N values (or one, or absent), else
    None.  A is checked at run time: float32 rows of K, at most
    _dense.MAX_ROWS of them (NumPy otherwise)."""
    if w is None or w.ndim != 2 or w.dtype != np.float32 or min(w.shape) < 1:
        return None
    N, K = w.shape
    if c is not None and beta != 0.0:
        c = np.asarray(c)
        if c.dtype != np.float32 or c.ndim > 2 or c.size not in (1, N) or \
                (c.ndim == 2 and c.shape[0] != 1):
            return None   # a per-row or per-element C: NumPy
        bias = np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (N,)) * np.float32(beta))
    else:
        bias = None
    if isinstance(w, _RowSource):
        packed = _dense.pack_rows(w.read, N, K, alpha)
    else:
        packed = _dense.pack(w if alpha == 1.0 else w * np.float32(alpha))
    name = f"{node.name}/leanconv_packed_weights"
    ctx.constants[name] = packed
    inputs = [node.inputs[0], name]
    if bias is not None:
        ctx.constants[name + "/bias"] = bias
        inputs.append(name + "/bias")
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    where = f"{node.op_type} node {node.name}"
    # The first call decides the weights' layout for good: an input of more rows
    # than the C kernel takes (a transformer's tokens; the compile pass at prepare
    # makes that call) rewrites the panels in place as W's rows (_dense.to_rows),
    # which BLAS then reads for every call; one of few rows keeps the panels (and
    # the C calls a compiled schedule binds to them stay valid)
    layout = []
    lock = threading.Lock()

    def check(a):
        if a.ndim < 1 or a.shape[-1] != K:
            raise ValueError(f"{where}: its input has shape {a.shape}, the constant matrix "
                             f"takes rows of {K} values")

    def rows_view(a, wp):
        """W (N x K) as rows in wp if the layout is rows (deciding it at the
        first call), else None: the panels serve."""
        if not layout:
            with lock:
                if not layout:
                    many = a.size > _dense.MAX_ROWS * K
                    if many:
                        _dense.to_rows(wp, N, K)
                    layout.append("rows" if many else "panels")
        return wp[:N * K].reshape(N, K) if layout[0] == "rows" else None

    def dense_bind(outs, a, wp, b=None):
        check(a)
        if rows_view(a, wp) is not None:
            return None
        return _dense.bind(a, outs[0], wp, b, N, settings.threads)

    def dense_into(outs, a, wp, b=None):
        call = dense_bind(outs, a, wp, b)
        if call is not None:
            _bound_pool.run(call)
        elif layout[0] == "rows":
            _dense.rows_apply(a, rows_view(a, wp).T, b, out=outs[0],
                              threads=_threads.resolve(settings.threads))
        else:
            _dense.numpy_apply(a, wp, b, N, out=outs[0])

    def dense(a, wp, b=None):
        check(a)
        w = rows_view(a, wp)
        if w is not None:
            return (_dense.rows_apply(a, w.T, b, threads=_threads.resolve(settings.threads)),)
        y = np.empty((a.shape[0], N), np.float32) if a.ndim == 2 else None
        if y is not None and _dense.c_runs(a, y, K):
            dense_into([y], a, wp, b)
            return (y,)
        return (_dense.numpy_apply(a, wp, b, N),)
    return Step(node, dense, inputs=inputs, into=dense_into, bind=dense_bind)


def build_einsum(node, ctx):
    """Einsum in NumPy (MaxViT's relative-position attention), its
    contraction order chosen once from the first call's shapes (np.einsum_path)
    and kept for the shapes it was found for."""
    node.allow("equation")
    equation = node.attr("equation")
    if isinstance(equation, bytes):
        equation = equation.decode()
    if not isinstance(equation, str) or not equation.strip():
        raise ValueError(f"Einsum node {node.name}: needs an equation attribute")
    equation = equation.replace(" ", "")
    paths = {}

    def einsum(*xs):
        shapes = tuple(x.shape for x in xs)
        path = paths.get(shapes)
        if path is None:
            try:
                path = paths[shapes] = np.einsum_path(equation, *xs, optimize="greedy")[0]
            except ValueError as e:
                raise ValueError(f"Einsum node {node.name}: equation {equation!r} does not fit "
                                 f"inputs of shapes {list(shapes)}: {e}") from None
        # (contiguous: einsum may return a transposed view, and the Reshape after
        # it must stay a view of what this step wrote)
        y = np.asarray(np.einsum(equation, *xs, optimize=path))
        return (y if y.flags.c_contiguous else np.copy(y, order="C"),)
    return Step(node, einsum, blas=True)
