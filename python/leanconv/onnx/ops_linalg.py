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

from leanconv import _batched_matmul, _blas_split, _bound_pool, _core, _dense, _isa, _threads
from leanconv.onnx.broadcast_binary import copy_bind
from leanconv.onnx.program import Step


def dense_step(node, ctx, bias=None, activation=None, residual=None):
    """The C step of a Gemm (not transA) or MatMul by a constant float32
    matrix, with what graph.py fused after it -- for a MatMul a constant bias
    of its N columns, then the name of a residual of its output's shape, then
    an activation (_epilogue.parse's forms) -- else None (nothing read)."""
    if node.op_type == "MatMul":
        if not _is_matrix(ctx, node.input(1)):
            return None
        cols = ctx.constants.row_reader(node.input(1))
        if cols is not None:   # W^T as stored: packed from the file a slice of its rows at a time
            k, n = ctx.constants.meta(node.input(1))[0]
            return _dense_step(node, ctx, _RowSource((n, k), cols, transposed=True), 1.0, bias,
                               1.0, activation, residual)
        b = _matrix(ctx, node.input(1))
        return _dense_step(node, ctx, b.T, 1.0, bias, 1.0, activation, residual)
    node.allow("alpha", "beta", "transA", "transB", "broadcast")
    alpha = float(node.attr("alpha", 1.0))
    beta = float(node.attr("beta", 1.0))
    ta, tb = int(node.attr("transA", 0)), int(node.attr("transB", 0))
    if ta or bias is not None or not _is_matrix(ctx, node.input(1)):
        return None
    c = ctx.const(node.input(2))
    if node.input(2) and c is None:
        return None   # a C fed at run time
    rows = ctx.constants.row_reader(node.input(1)) if tb else None
    meta = ctx.constants.meta(node.input(1)) if rows is not None else None
    if rows is not None and len(meta[0]) == 2 and meta[1] == np.float32:
        # W as stored (transB): packed from the file a slice at a time
        return _dense_step(node, ctx, _RowSource(meta[0], rows), alpha, c, beta, activation,
                           residual)
    b = _matrix(ctx, node.input(1))
    return _dense_step(node, ctx, b if tb else b.T, alpha, c, beta, activation, residual)


def _is_matrix(ctx, name):
    """Whether input `name` is a constant 2-D float32 matrix (looked at, not read)."""
    meta = ctx.constants.meta(name) if name in ctx.constants else None
    return meta is not None and len(meta[0]) == 2 and meta[1] == np.float32


def build_gemm(node, ctx):
    node.allow("alpha", "beta", "transA", "transB", "broadcast")
    alpha = float(node.attr("alpha", 1.0))
    beta = float(node.attr("beta", 1.0))
    ta, tb = int(node.attr("transA", 0)), int(node.attr("transB", 0))
    step = dense_step(node, ctx)
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
    step = dense_step(node, ctx)
    if step is not None:
        return step
    return _activation_matmul(node, ctx, 1.0)


def build_scaled_matmul(node, ctx):
    """rewrite.SCALED_MATMUL: alpha * (A @ B) of run-time operands."""
    node.allow("alpha")
    return _activation_matmul(node, ctx, float(node.attr("alpha", 1.0)))


def _activation_matmul(node, ctx, alpha):
    """alpha * (A @ B) of run-time operands: the batched C GEMM over their
    views where it takes them (bound in the schedule's C loop), else BLAS."""
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def matmul_bind(outs, a, b):
        return _batched_matmul.bind(a, b, outs[0], settings.threads, _isa.isa_id(), alpha)

    def matmul_into(outs, a, b):
        y = outs[0]
        call = matmul_bind(outs, a, b)
        if call is not None:
            _bound_pool.run(call)
            return
        if a.ndim == b.ndim >= 3 and a.dtype == b.dtype == y.dtype == np.float32 and \
                y.shape == a.shape[:-1] + b.shape[-1:]:
            _blas_split.batched_matmul_into(a, b, y, _threads.resolve(settings.threads))
        else:
            np.matmul(a, b, out=y)
        if alpha != 1.0:
            y *= y.dtype.type(alpha)

    def matmul(a, b):
        y = np.matmul(a, b)
        return (np.asarray(y * y.dtype.type(alpha) if alpha != 1.0 else y),)

    def matmul_workspace(a, b):
        return _batched_matmul.workspace_bytes(a, b, settings.threads, _isa.isa_id())
    return Step(node, matmul, blas=True, into=matmul_into, bind=matmul_bind,
                workspace=matmul_workspace)


def _matrix(ctx, name):
    """A constant input's value (read once: the packed copy replaces it), or
    None when it is not a constant."""
    return ctx.constants.read_once(name)


class _RowSource:
    """A float32 matrix W (shape) in the model file, read by rows when packed:
    read(start, stop) gives W's rows, or with `transposed` W^T's (a MatMul's
    constant as stored)."""
    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, shape, read, transposed=False):
        self.shape, self.read, self.transposed = tuple(shape), read, transposed


def _dense_step(node, ctx, w, alpha, c, beta, activation=None, residual=None):
    """The C step for y = act(alpha * A W^T + beta * c (+ residual)) with W
    (N x K) a constant float32 matrix, c a constant of N values (or one, or
    absent), residual the name of a run-time value of y's shape (or None),
    else None.  A is checked at run time."""
    if w is None or w.ndim != 2 or w.dtype != np.float32 or min(w.shape) < 1:
        return None
    N, K = w.shape
    if c is not None and beta != 0.0:
        c = np.asarray(c)
        if c.dtype != np.float32 or c.size not in (1, N) or \
                (c.size == N and c.shape[-1] != N):
            return None   # a per-row or per-element C: NumPy
        bias = np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (N,)) * np.float32(beta))
    else:
        bias = None
    # room for the token GEMM's panels too (wider on AVX-512: 48 rows of W
    # where the gemv's take 16), which replace the gemv's in place when the
    # first input has many rows
    room = _core.token_packed_floats(N, K, _isa.isa_id())
    # a slice of rows at a time: MatMul's (K x N) constant arrives as W's
    # transposed view, whose contiguous copy (and alpha's scaled one) would be
    # a second and third W beside the packing (ViT-B's fc1: 9.4 MB each)
    if isinstance(w, _RowSource) and w.transposed:
        packed = _dense.pack_columns(w.read, N, K, alpha, capacity=room)
    else:
        read = w.read if isinstance(w, _RowSource) else (lambda start, stop: w[start:stop])
        packed = _dense.pack_rows(read, N, K, alpha, capacity=room)
    gemv_floats = _core.se_packed_floats(N, K)
    name = f"{node.name}/leanconv_packed_weights"
    ctx.constants[name] = packed
    inputs = [node.inputs[0], name]
    if bias is not None:
        ctx.constants[name + "/bias"] = bias
        inputs.append(name + "/bias")
    if residual is not None:
        inputs.append(residual)
    has_bias, has_res = bias is not None, residual is not None
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    where = f"{node.op_type} node {node.name}"
    # The first call decides the weights' layout for good (the compile pass at
    # prepare makes that call): an input of more rows than the gemv takes (a
    # transformer's tokens) rewrites the panels in place as the token GEMM's
    # (_dense.to_tokens; as W's rows for BLAS where those do not fit), one of
    # few rows keeps them (and the C calls a compiled schedule binds to them
    # stay valid).  layout: [(kind, the weights in it, ISA id)]
    layout = []
    lock = threading.Lock()

    def check(a):
        if a.ndim < 1 or a.shape[-1] != K:
            raise ValueError(f"{where}: its input has shape {a.shape}, the constant matrix "
                             f"takes rows of {K} values")

    def many_rows(a):
        return a.size > _dense.MAX_ROWS * K

    def decide(a, wp):
        if not layout:
            with lock:
                if not layout:
                    isa = _isa.isa_id()
                    tp = _dense.to_tokens(wp, N, K, isa) if many_rows(a) else None
                    if tp is not None:
                        layout.append(("tokens", tp, isa))
                    elif many_rows(a):
                        layout.append(("rows", _dense.to_rows(wp, N, K), isa))
                    else:
                        layout.append(("panels", wp[:gemv_floats], isa))
        return layout[0]

    def unpack(rest):
        return (rest[0] if has_bias else None), (rest[-1] if has_res else None)

    def dense_bind(outs, a, wp, *rest):
        check(a)
        b, res = unpack(rest)
        kind, wv, isa = decide(a, wp)
        y = outs[0]
        if kind == "tokens":
            call = _dense.token_bind(a, y, wv, b, res, activation, N, settings.threads, isa)
            if call is None and res is not None and not res.flags.c_contiguous and \
                    res.shape == y.shape and not np.may_share_memory(a, y):
                # a strided residual (MaxViT's grid attention adds its input back
                # through the partition's Transpose): copied into y, then added in place
                copy = copy_bind(y, res, settings.threads)
                gemm = None if copy is None else _dense.token_bind(
                    a, y, wv, b, y, activation, N, settings.threads, isa)
                call = None if gemm is None else _core.BoundSequence(copy, gemm)
            return call
        if kind == "panels" and res is None:
            return _dense.bind(a, y, wv, b, N, settings.threads, activation)
        return None

    def dense_into(outs, a, wp, *rest):
        call = dense_bind(outs, a, wp, *rest)
        kind, wv, isa = layout[0]
        if call is not None:
            _bound_pool.run(call)
            return
        b, res = unpack(rest)
        y, threads = outs[0], _threads.resolve(settings.threads)
        if res is not None and np.shares_memory(res, y):
            res = res.copy()   # y took over the residual's buffer (Step.inplace)
        if kind == "panels" and _dense.c_runs(a, y, K):
            _dense.run_into(a, y, wv, b, N, settings.threads)
        elif kind == "rows":
            _dense.rows_apply(a, wv.T, b, out=y, threads=threads)
        else:   # the panels (or the token GEMM's) as W^T for BLAS
            _dense.rows_apply(a, _dense.weights_t(wv, N, K, isa if kind == "tokens" else None),
                              b, out=y, threads=threads)
        _dense.epilogue_after(y, None, res, activation, threads)

    def dense(a, wp, *rest):
        check(a)
        y = np.empty(a.shape[:-1] + (N,), np.float32)
        dense_into([y], a, wp, *rest)
        return (y,)

    def workspace(a, wp, *rest):
        """The token GEMM's packed rows, where its layout is (or will be) chosen."""
        kind = layout[0][0] if layout else ("tokens" if many_rows(a) else "")
        return _core.token_gemm_workspace(a.size // K, K, _isa.isa_id()) if kind == "tokens" \
            else 0
    return Step(node, dense, inputs=inputs, into=dense_into, bind=dense_bind,
                workspace=workspace, inplace=(len(inputs) - 1,) if has_res else (), blas=True)


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
    as_matmul = _einsum_as_matmul(equation)
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def operands(xs):
        """(a, b) with einsum(xs) == a @ b, or None (NumPy's einsum then)."""
        if as_matmul is None or len(xs) != 2 or xs[0].ndim != len(as_matmul[0]) or \
                xs[1].ndim != len(as_matmul[0]):
            return None
        return xs[0], (xs[1].swapaxes(-1, -2) if as_matmul[1] else xs[1])

    def einsum_bind(outs, *xs):
        ab = operands(xs)
        return None if ab is None else \
            _batched_matmul.bind(ab[0], ab[1], outs[0], settings.threads, _isa.isa_id())

    def einsum_into(outs, *xs):
        call = einsum_bind(outs, *xs)
        if call is not None:
            _bound_pool.run(call)
        else:
            np.copyto(outs[0], einsum(*xs)[0])

    def einsum_workspace(*xs):
        ab = operands(xs)
        return 0 if ab is None else \
            _batched_matmul.workspace_bytes(ab[0], ab[1], settings.threads, _isa.isa_id())

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
    return Step(node, einsum, blas=True, into=einsum_into, bind=einsum_bind,
                workspace=einsum_workspace)


def _einsum_as_matmul(equation):
    """(the output's subscripts, whether the second operand is transposed)
    when `equation` is a batched matrix product -- "...ik,...kj->...ij" or
    "...ik,...jk->...ij", the same batch letters in the same order
    everywhere (MaxViT's relative-position attention) -- else None."""
    if "->" not in equation or "." in equation:
        return None
    ins, out = equation.split("->")
    ins = ins.split(",")
    if len(ins) != 2 or len(out) < 2 or len(set(out)) != len(out):
        return None
    a, b = ins
    batch, (i, j) = out[:-2], out[-2:]
    if len(a) != len(out) or len(b) != len(out) or a[:-2] != batch or b[:-2] != batch or \
            a[-2] != i:
        return None
    k = a[-1]
    if k in out:
        return None
    if b[-2:] == k + j:
        return out, False
    if b[-2:] == j + k:
        return out, True
    return None
