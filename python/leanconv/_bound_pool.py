"""Pooling steps as bound C calls (_core.BoundPool) for the compiled
schedules of leanconv.onnx and of frozen torch models: the schedule runs
them among the Convs' bound calls, with no Python around the C call.  A
global average pool was 6-8 us of C inside MobileNetV2 and 14-36 us as a
Python step: its glue ran after the convolutions had evicted the
interpreter's state from the caches.  (No onnx import: frozen torch models
use this too.)"""
from __future__ import annotations

import numpy as np

from leanconv import _core, _isa, _scratch, _threads


_NO_WORKSPACE = np.zeros(0, np.uint8)


def run(call):
    """Run one bound call now (a step called outside a compiled schedule), in
    a workspace of its own when it declares one (`workspace_bytes`: the
    token and batched GEMMs' packed panels)."""
    need = getattr(call, "workspace_bytes", 0)
    _core.run_bound((call,), _scratch.aligned_empty(need) if need > 0 else _NO_WORKSPACE)


def bindable(x, y):
    """x and y as a bound C pooling call takes them: 4-D float32, contiguous."""
    return y is not None and x.ndim == 4 and x.dtype == np.float32 and \
        y.dtype == np.float32 and x.flags.c_contiguous and y.flags.c_contiguous


def channel_affine(y, x, scale, shift, relu, threads):
    """The call writing x * scale + shift per channel of x (N, C, H, W) into y
    (kernels/channel_affine.c; relu: clamped at 0), scale and shift
    contiguous float32 of C values, or None where the step's Python must run."""
    if x.ndim != 4 or not bindable(x, y) or y.shape != x.shape or \
            scale.size != x.shape[1] or shift.size != x.shape[1]:
        return None
    return _core.BoundAffine(x.reshape(-1), y.reshape(-1), x.shape[0] * x.shape[1],
                             x.shape[2] * x.shape[3], scale, shift, relu,
                             _threads.resolve(threads), _isa.isa_id())


def global_avg_pool(y, x, threads):
    """The call averaging each plane of x (N, C, H, W) into y, or None where
    the step's Python must run."""
    if not bindable(x, y):
        return None
    planes = x.shape[0] * x.shape[1]
    return _core.BoundPool(x.reshape(-1), y.reshape(-1), None, planes, x.size // max(planes, 1),
                           False, False, _threads.resolve(threads))


def pool2d(y, x, geom, is_max, count_include_pad, threads):
    """The call of _core.pool2d's geometry `geom` from x into y, or None."""
    if not bindable(x, y):
        return None
    return _core.BoundPool(x.reshape(-1), y.reshape(-1), geom, 0, 0, is_max, count_include_pad,
                           _threads.resolve(threads), _isa.isa_id())
