"""MatMul of two run-time operands -- attention's Q K^T and A V -- in
leanconv's C (kernels/batched_gemm.c) on leanconv's threads, the operands
read through their strides as they are (the Transposes and Gathers before
them are views).

`bind` fixes the C call to one pair of arrays and an output: each operand's
batch dimensions become one offset per product (in floats from the array's
first element, from its own strides), its last two axes a row and a column
stride.  Shapes it does not take (broadcast batch dimensions, 1-D operands,
negative strides, another dtype) return None: NumPy does those."""
from __future__ import annotations

import numpy as np

from leanconv import _core, _threads

_F32 = np.dtype(np.float32)


def _offsets(a, batch_shape):
    """Offsets (floats) of a's matrices, its batch dims flattened in C order."""
    strides = [s // 4 for s in a.strides[:-2]]
    off = np.zeros(batch_shape, np.int64)
    for axis, (size, st) in enumerate(zip(batch_shape, strides)):
        shape = [1] * len(batch_shape)
        shape[axis] = size
        off = off + (np.arange(size, dtype=np.int64) * st).reshape(shape)
    return np.ascontiguousarray(off.reshape(-1))


def takes(a, b):
    """Whether the C call takes a @ b as they are."""
    if a.dtype != _F32 or b.dtype != _F32 or a.ndim < 2 or a.ndim != b.ndim or \
            a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        return False
    return a.size > 0 and b.size > 0 and \
        all(s >= 0 and s % 4 == 0 for s in a.strides + b.strides)


def bind(a, b, y, threads, isa, alpha=1.0):
    """The BoundBatchedGemm computing y = alpha * (a @ b), or None where `takes` refuses
    or y is not a contiguous float32 array of the product's shape."""
    if not takes(a, b) or y.dtype != _F32 or not y.flags.c_contiguous or \
            y.shape != a.shape[:-1] + b.shape[-1:]:
        return None
    batch = a.shape[:-2]
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    return _core.BoundBatchedGemm(a, _offsets(a, batch), a.strides[-2] // 4, a.strides[-1] // 4,
                                  b, _offsets(b, batch), b.strides[-2] // 4, b.strides[-1] // 4,
                                  y.reshape(-1), m, k, n, _threads.resolve(threads), isa, alpha)


def workspace_bytes(a, b, threads, isa):
    """Scratch bytes of the call bind() makes for these operands (0 where
    `takes` refuses them: NumPy runs them in its own memory)."""
    if not takes(a, b):
        return 0
    batch = int(np.prod(a.shape[:-2], dtype=np.int64))
    return _core.batched_gemm_workspace(batch, a.shape[-2], a.shape[-1], b.shape[-1],
                                        b.strides[-1] // 4, _threads.resolve(threads), isa)
