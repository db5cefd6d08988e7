"""One scratch buffer per calling thread, lent to the convolutions a whole
model runs one after another (leanconv.onnx's compiled schedules, which
leanconv.torch.freeze's frozen models run on too, and a frozen layer called
on its own).

A convolution's workspace (Im2Col's column matrix, Winograd's transformed
tiles) is needed only during its own call, so consecutive layers can share
one buffer sized for the largest instead of each allocating and freeing its
own on every call (a multi-MB allocation is page faults each time, or heap
fragmentation once glibc's mmap threshold has risen).  The buffer belongs to
the calling thread, so two threads running models at once never share it;
it grows to the largest request and is kept until `release()` (or the
thread's end)."""
from __future__ import annotations

import threading

import numpy as np

ALIGN = 64   # what a lent workspace must start on (the kernels' aligned loads)

_local = threading.local()


def aligned_empty(nbytes: int) -> np.ndarray:
    """A new, uninitialised, ALIGN-byte aligned 1-D uint8 array of nbytes."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes]


def lend(nbytes: int) -> np.ndarray:
    """This thread's scratch: a writable, 64-byte aligned 1-D uint8 array of
    at least `nbytes` (grown, not preserved, when too small)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.shape[0] < nbytes:
        _local.buf = None                     # the old one goes before the new one comes
        buf = _local.buf = aligned_empty(nbytes)
    return buf


def held_bytes() -> int:
    """Bytes of this thread's scratch (0 if it has none)."""
    buf = getattr(_local, "buf", None)
    return 0 if buf is None else buf.shape[0]


def release() -> None:
    """Drop this thread's scratch (the next lend allocates afresh)."""
    _local.buf = None
