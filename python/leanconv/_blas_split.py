"""One large matrix product in NumPy's BLAS spread over `threads`.

leanconv.onnx runs NumPy's BLAS on one thread (onnx/schedule.py's
blas_limit: OpenBLAS's workers spin ~0.1 s after a multi-threaded call and
take the second core from leanconv's pool), so the MatMuls of a transformer
-- 80-90% of its run -- used no second thread at all (ViT-B 224 at 2
threads: 0.46x onnxruntime, the same time as at 1).  Here the product is cut
into blocks of rows (or of output columns, where there are more columns
than rows), their number and size a function of the shapes alone -- the same
BLAS calls at any thread count, so the bits do not depend on it -- and the
calling thread and threads - 1 helpers take blocks in turn, each calling
BLAS on its own thread with the GIL released.  The helpers block on a queue
between products (no spinning); a product worth splitting takes milliseconds,
against tens of microseconds to wake one."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCKS = 8                 # blocks of a split product: 4 + 4 at 2 threads, 3 + 3 + 2 at 3
MIN_SPLIT_MACS = 1 << 22   # ~40 us on one core: smaller products are one call
ROW_ALIGN, COLUMN_ALIGN = 16, 64

_pool = None
_pool_workers = 0
_pool_lock = threading.Lock()


def _helpers(workers):
    """A pool of at least `workers` threads (made, or grown, on first need)."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="leanconv-blas")
            _pool_workers = workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def _step(size, align):
    """Block length: size / BLOCKS, rounded up to a multiple of align."""
    per = -(-size // BLOCKS)
    return -(-per // align) * align


def blocks(m, k, n):
    """[(row slice, column slice)] of y (m x n) = a (m x k) b (k x n)."""
    if m * k * n < MIN_SPLIT_MACS or max(m, n) < 2 * ROW_ALIGN:
        return [(slice(None), slice(None))]
    if m >= n:
        step = _step(m, ROW_ALIGN)
        return [(slice(i, i + step), slice(None)) for i in range(0, m, step)]
    step = _step(n, COLUMN_ALIGN)
    return [(slice(None), slice(j, j + step)) for j in range(0, n, step)]


def matmul_into(a, b, y, threads):
    """y = a @ b for 2-D a (m x k), b (k x n) and a writeable y (m x n), in
    BLAS calls over `blocks` spread over `threads` threads; returns y."""
    parts = blocks(a.shape[0], a.shape[1], b.shape[1])
    _run(parts, lambda part: np.matmul(a[part[0]], b[:, part[1]], out=y[part]), threads)
    return y


def batch_blocks(a_shape, b_shape):
    """[index] of a batched product a @ b (batch dimensions equal, none
    broadcast): blocks of its first batch axis of more than one matrix, or
    [()] -- one call -- when it is small or broadcasts."""
    if len(a_shape) < 3 or a_shape[:-2] != b_shape[:-2]:
        return [()]
    m, k = a_shape[-2:]
    if int(np.prod(a_shape[:-2])) * m * k * b_shape[-1] < MIN_SPLIT_MACS:
        return [()]
    axis = next((i for i, d in enumerate(a_shape[:-2]) if d > 1), None)
    if axis is None:
        return [()]
    size = a_shape[axis]
    step = -(-size // BLOCKS)
    return [(slice(None),) * axis + (slice(i, i + step),) for i in range(0, size, step)]


def batched_matmul_into(a, b, y, threads):
    """y = a @ b (np.matmul's batched product; y writeable, of its shape) in
    BLAS calls over `batch_blocks` spread over `threads` threads: the
    attention products of a transformer (ViT-B: 12 heads of 197 x 64 by 64 x
    197).  Returns y."""
    parts = batch_blocks(a.shape, b.shape)
    _run(parts, lambda part: np.matmul(a[part], b[part], out=y[part]), threads)
    return y


def _run(parts, call, threads):
    """call(part) for every part: on this thread, or taken in turn by this
    thread and threads - 1 helpers."""
    if threads <= 1 or len(parts) == 1:
        for part in parts:
            call(part)
        return
    todo = iter(parts)
    lock = threading.Lock()

    def take():
        while True:
            with lock:
                part = next(todo, None)
            if part is None:
                return
            call(part)

    n = min(threads, len(parts)) - 1
    helpers = _helpers(n)
    waits = [helpers.submit(take) for _ in range(n)]
    take()
    for w in waits:
        w.result()
