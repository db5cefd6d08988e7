"""The copy a reshape makes of a view that is not contiguous.

Reshape, Flatten, Squeeze and Unsqueeze are views in a compiled schedule
unless their input is itself a permuted view -- ShuffleNet's channel shuffle,
Reshape -> Transpose -> Reshape, whose last Reshape reads the Transpose's
view, or Swin's window partition.  Then the step copies, once, straight into
its output buffer: the elements keep their C order, so that buffer seen in
the input's shape is the copy's target.  The copy is one bound C call
(broadcast_binary.copy_bind: kernels/binary.c on leanconv's threads) wherever
that takes the view -- in a compiled schedule's C loop, and run from Python
by the step's into() otherwise -- else NumPy's."""
from __future__ import annotations

import numpy as np

from leanconv import _bound_pool
from leanconv.onnx.broadcast_binary import copy_bind

class ReshapeInto:
    """into() of a reshape op: the one copy, into the output's buffer.  The
    bound copy of the last input view is kept (a schedule calls with the
    same buffers every run)."""

    def __init__(self, settings):
        self.settings = settings
        self._key = self._call = None

    def __call__(self, outs, x, *_):
        y = outs[0]
        key = (x.ctypes.data, x.shape, x.strides, x.dtype, y.ctypes.data, y.shape)
        if key != self._key:
            self._key, self._call = key, self.bind(outs, x)
        if self._call is None:
            np.copyto(y.reshape(x.shape), x)
        else:
            _bound_pool.run(self._call)

    def bind(self, outs, x, *_):
        """The copy as one bound C call, for a non-contiguous float32 view."""
        y = outs[0]
        return None if x.flags.c_contiguous else copy_bind(y, x, self.settings.threads)


def reshape_copy(settings):
    """A reshape Step's into= and bind= (one ReshapeInto for both)."""
    r = ReshapeInto(settings)
    return {"into": r, "bind": r.bind}
