"""leanconv.torch.Conv2d under torch.compile and torch.export.

Dynamo cannot trace leanconv's NumPy/C call, and tracing the eligibility
checks would guard on every tensor property.  So while compiling, a Conv2d
calls the custom op leanconv::conv2d instead: one opaque node that Dynamo
neither breaks the graph at nor recompiles for.  The op names its module by
an integer handle into a registry of live modules; at run time it runs the
module's ordinary (eager) forward.  Its fake implementation gives the output
shape, dtype and layout; its backward is torch's own convolution backward
(recomputed through the module's stock torch path), so gradients are torch's."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from leanconv.torch.registry import Registry

from leanconv.torch import eligibility

_registry = Registry("leanconv::conv2d")
register = _registry.register
_module = _registry.get


@torch.library.custom_op("leanconv::conv2d", mutates_args=())
def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
           handle: int) -> torch.Tensor:
    with torch.no_grad():               # autograd is the op's own (below)
        return _module(handle).eager_forward(x)


@conv2d.register_fake
def _(x, weight, bias, handle):
    m = _module(handle)
    shape = _stock_output(m, x)
    out = x.new_empty(shape.shape, dtype=shape.dtype)
    fmt = eligibility.output_memory_format(x, weight)
    return out if fmt == torch.contiguous_format else out.contiguous(memory_format=fmt)


def _stock_output(m, x):
    """Shape and dtype torch's conv would give (meta tensors: no arithmetic)."""
    meta = x.new_empty(x.shape, device="meta") if x.device.type != "meta" else x
    w = torch.empty(m.weight.shape, dtype=m.weight.dtype, device="meta")
    b = None if m.bias is None else torch.empty(m.bias.shape, dtype=m.bias.dtype, device="meta")
    return nn.Conv2d._conv_forward(m, meta, w, b)


def _setup_context(ctx, inputs, output):
    x, weight, bias, handle = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.handle = handle


def _backward(ctx, grad_out):
    x, weight, bias = ctx.saved_tensors
    m = _module(ctx.handle)
    need = ctx.needs_input_grad[:3]
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(n) if t is not None else None
                  for t, n in zip((x, weight, bias), need)]
        y = nn.Conv2d._conv_forward(m, *leaves)
        wanted = [t for t, n in zip(leaves, need) if t is not None and n]
        grads = iter(torch.autograd.grad(y, wanted, grad_out) if wanted else ())
    return tuple(next(grads) if t is not None and n else None
                 for t, n in zip(leaves, need)) + (None,)


conv2d.register_autograd(_backward, setup_context=_setup_context)
