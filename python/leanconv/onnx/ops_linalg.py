"""Gemm and MatMul in NumPy (its BLAS does the work).

Transposes stay views: BLAS takes the transpose flag itself, and a (N, K)
weight of transB=1 keeps each output a dot product of two contiguous rows,
which rounds every output the same way as the usual runtimes do."""
from __future__ import annotations

import numpy as np

from leanconv.onnx.program import Step


def build_gemm(node, ctx):
    node.allow("alpha", "beta", "transA", "transB", "broadcast")
    alpha = float(node.attr("alpha", 1.0))
    beta = float(node.attr("beta", 1.0))
    ta, tb = int(node.attr("transA", 0)), int(node.attr("transB", 0))

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
    return Step(node, lambda a, b: (np.asarray(np.matmul(a, b)),), blas=True,
                into=lambda outs, a, b: np.matmul(a, b, out=outs[0]))
