"""leanconv::frozen_conv2d, the op a frozen convolution is to torch.compile
and torch.export: one opaque call (with a fake implementation that only
computes the output shape), so Dynamo neither breaks the graph at leanconv's
NumPy code nor recompiles per call.  The op names its FrozenConv2d by an
integer handle into a process-wide registry of live modules; an exported
program that holds such handles runs only in the process that froze it."""
from __future__ import annotations

import itertools
import weakref
from typing import Optional

import torch

_modules: "weakref.WeakValueDictionary[int, object]" = weakref.WeakValueDictionary()
_next = itertools.count(1)


def register(module) -> int:
    handle = next(_next)
    _modules[handle] = module
    return handle


def _module(handle):
    m = _modules.get(handle)
    if m is None:
        raise RuntimeError(f"leanconv::frozen_conv2d: frozen convolution {handle} no longer "
                           f"exists (a compiled or exported graph outlived its frozen model, or "
                           f"runs in another process); freeze the model again")
    return m


def _out_dtype(x):
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


@torch.library.custom_op("leanconv::frozen_conv2d", mutates_args=())
def frozen_conv2d(x: torch.Tensor, handle: int, residual: Optional[torch.Tensor]) -> torch.Tensor:
    return _module(handle).run(x, residual)


@frozen_conv2d.register_fake
def _(x, handle, residual):
    return x.new_empty(_module(handle).output_shape(x.shape), dtype=_out_dtype(x))
