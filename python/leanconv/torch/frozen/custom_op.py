"""leanconv::frozen_conv2d, the op a frozen convolution is to torch.compile
and torch.export: one opaque call (with a fake implementation that only
computes the output shape), so Dynamo neither breaks the graph at leanconv's
NumPy code nor recompiles per call.  The op names its FrozenConv2d by an
integer handle into a process-wide registry of live modules; an exported
program that holds such handles runs only in the process that froze it."""
from __future__ import annotations

from typing import Optional

import torch

from leanconv.torch.registry import Registry

_registry = Registry("leanconv::frozen_conv2d")
register = _registry.register
_module = _registry.get


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
