"""The copy a reshape makes of a view that is not contiguous.

Reshape, Flatten, Squeeze and Unsqueeze are views in a compiled schedule
unless their input is itself a permuted view -- ShuffleNet's channel shuffle,
Reshape -> Transpose -> Reshape, whose last Reshape reads the Transpose's
view.  Then the step copies, once, straight into its output buffer: the
elements keep their C order, so that buffer seen in the input's shape is the
copy's target.  When the view is a permutation of whole contiguous runs of
one block of memory (a shuffle moves whole planes) the runs are copied in C
on leanconv's threads (kernels/gather.c); other views through NumPy.  In a
compiled schedule the copy is one bound C call (broadcast_binary.copy_bind)
wherever that takes the view."""
from __future__ import annotations

import numpy as np

from leanconv import _core, _threads
from leanconv.onnx.broadcast_binary import copy_bind

MIN_RUN = 16   # floats: shorter runs (an NCHW -> NHWC transpose's single values) through NumPy


def runs_of(x):
    """(x's memory as one flat array, the offset of each of its trailing
    contiguous runs in C order, the run length) when x's elements are exactly
    the block of x.size elements at its first element, cut into runs of at
    least MIN_RUN; else None."""
    item = x.itemsize
    k, run = x.ndim, 1
    while k > 0 and (x.shape[k - 1] == 1 or x.strides[k - 1] == run * item):
        run *= x.shape[k - 1]
        k -= 1
    if k == 0 or run < MIN_RUN or any(s < 0 or s % item for s in x.strides[:k]):
        return None
    offsets = np.zeros(x.shape[:k], np.int64)
    for a in range(k):
        axis = np.arange(x.shape[a], dtype=np.int64) * (x.strides[a] // item)
        offsets = offsets + axis.reshape([-1 if b == a else 1 for b in range(k)])
    offsets = np.ascontiguousarray(offsets.reshape(-1))
    # one block: every run starts on a multiple of `run` inside it, each once (a
    # slice leaves gaps, a broadcast repeats) -- not by sorting: NumPy's sorts
    # paged in 120 KB of code at ShuffleNet's first run
    slot, rem = np.divmod(offsets, run)
    n = offsets.size
    if np.count_nonzero(rem) or slot.min() < 0 or slot.max() >= n or \
            np.count_nonzero(np.bincount(slot, minlength=n)) != n:
        return None
    flat = np.lib.stride_tricks.as_strided(x, shape=(x.size,), strides=(item,), writeable=False)
    return flat, offsets, run


class ReshapeInto:
    """into() of a reshape op: the one copy, into the output's buffer.  The
    runs of the last input view are kept (a schedule calls with the same
    buffers every run)."""

    def __init__(self, settings):
        self.settings = settings
        self._key = self._runs = None

    def __call__(self, outs, x, *_):
        y = outs[0]
        if x.dtype == np.float32 and y.flags.c_contiguous and not x.flags.c_contiguous:
            key = (x.ctypes.data, x.shape, x.strides)
            if key != self._key:
                self._key, self._runs = key, runs_of(x)
            if self._runs is not None:
                flat, offsets, run = self._runs
                _core.gather_runs(flat, y.reshape(-1), offsets, run,
                                  _threads.resolve(self.settings.threads))
                return
        np.copyto(y.reshape(x.shape), x)

    def bind(self, outs, x, *_):
        """The copy as one bound C call, for a non-contiguous float32 view."""
        y = outs[0]
        return None if x.flags.c_contiguous else copy_bind(y, x, self.settings.threads)


def reshape_copy(settings):
    """A reshape Step's into= and bind= (one ReshapeInto for both)."""
    r = ReshapeInto(settings)
    return {"into": r, "bind": r.bind}
