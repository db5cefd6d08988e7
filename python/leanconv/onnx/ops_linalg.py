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

    def gemm(a, b, c=None):
        y = (a.T if ta else a) @ (b.T if tb else b)
        if alpha != 1.0:
            y *= y.dtype.type(alpha)
        if c is not None and beta != 0.0:
            y += c * c.dtype.type(beta) if beta != 1.0 else c
        return (y,)
    return Step(node, gemm)


def build_matmul(node, ctx):
    node.allow()
    return Step(node, lambda a, b: (np.asarray(np.matmul(a, b)),))
