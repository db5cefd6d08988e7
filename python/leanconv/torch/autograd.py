"""Gradients of a leanconv forward: torch's own convolution backward.

The forward runs on leanconv; backward calls aten.convolution_backward with
the same geometry, so gradients are exactly torch's.  torch's backward takes
symmetric padding only; an asymmetric 'same' padding (even kernels) is
handled the way torch's forward handles it: pad the input explicitly by the
difference, then cut the gradient back to the input's size."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _split_pads(pads):
    top, bottom, left, right = pads
    ph, pw = min(top, bottom), min(left, right)
    return (ph, pw), (left - pw, right - pw, top - ph, bottom - ph)


class LeanConv2dFunction(torch.autograd.Function):
    """y = run(x) in forward; torch's convolution backward for x, weight, bias."""

    @staticmethod
    def forward(ctx, input, weight, bias, run, call):
        ctx.save_for_backward(input, weight)
        ctx.call = call
        ctx.bias_shape = None if bias is None else list(bias.shape)
        return run()

    @staticmethod
    def backward(ctx, grad_out):
        input, weight = ctx.saved_tensors
        c = ctx.call
        unbatched = input.dim() == 3
        if unbatched:
            input, grad_out = input.unsqueeze(0), grad_out.unsqueeze(0)
        sym, extra = _split_pads(c.pads)
        if any(extra):
            input = F.pad(input, extra)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad_out, input, weight, ctx.bias_shape, list(c.stride), list(sym),
            list(c.dilation), False, [0, 0], c.groups, [need_x, need_w, need_b])
        if gx is not None:
            if any(extra):
                left, right, top, bottom = extra
                gx = gx[..., top:gx.shape[-2] - bottom, left:gx.shape[-1] - right]
            if unbatched:
                gx = gx.squeeze(0)
        return gx, gw, gb if need_b else None, None, None
