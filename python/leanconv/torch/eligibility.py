"""Can leanconv run this torch convolution, and with which normalised arguments?

`check(...)` returns either a Call (everything leanconv needs) or a Skip: a
reason torch must run it instead, and whether that deserves a warning.  Calls
that are simply invalid (wrong ranks, channel mismatch, a kernel larger than
the padded input, ...) are Skips without a warning: torch then raises its own
error message, exactly as the user would get without leanconv."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from leanconv._params import padding4


@dataclass(frozen=True)
class Skip:
    reason: str
    warn: bool


@dataclass(frozen=True)
class Call:
    stride: tuple
    pads: tuple          # (top, bottom, left, right)
    dilation: tuple
    groups: int


_INVALID = Skip("invalid arguments: torch reports them", warn=False)


def _pair(value):
    """torch accepts an int or a sequence of one or two ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list, torch.Size)):
        vals = tuple(value)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            return None
        if len(vals) == 1:
            return (vals[0], vals[0])
        if len(vals) == 2:
            return vals
    return None


def _tensor_problem(t, name):
    """Why leanconv cannot read tensor `t` directly, or None."""
    if type(t) not in (torch.Tensor, torch.nn.Parameter):
        return f"{name} is a {type(t).__name__}"
    if t.layout != torch.strided:
        return f"{name} layout {t.layout}"
    if t.device.type != "cpu":
        return f"device {t.device}"
    if t.dtype != torch.float32:
        return f"dtype {t.dtype}"
    if t.is_quantized or t.is_neg() or t.is_conj():
        return f"{name} is quantized or lazily negated"
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    if wrapped is not None and wrapped(t):
        return "torch.func transform (vmap/grad/jvp)"
    return None


def check(input, weight, bias, stride, padding, dilation, groups):
    """Call or Skip for F.conv2d(input, weight, bias, stride, padding, dilation, groups)."""
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        return _INVALID
    if bias is not None and not isinstance(bias, torch.Tensor):
        return _INVALID
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return Skip("torch.jit tracing/scripting", warn=True)
    for t, name in ((input, "input"), (weight, "weight"), (bias, "bias")):
        if t is not None:
            problem = _tensor_problem(t, name)
            if problem is not None:
                return Skip(problem, warn=True)
    if input.dim() not in (3, 4) or weight.dim() != 4:
        return _INVALID
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        return _INVALID
    if input.numel() == 0 or weight.numel() == 0:
        return _INVALID  # torch defines the empty cases; nothing to speed up
    s, d = _pair(stride), _pair(dilation)
    if s is None or d is None or min(s) < 1 or min(d) < 1:
        return _INVALID
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        return _INVALID
    M, Cg, kH, kW = weight.shape
    C, H, W = input.shape[-3:]
    if C != Cg * groups or M % groups:
        return _INVALID
    if isinstance(padding, str):
        if padding not in ("same", "valid") or (padding == "same" and s != (1, 1)):
            return _INVALID
        pads = padding4(padding, (kH, kW), s, d)
    else:
        p = _pair(padding)
        if p is None or min(p) < 0:
            return _INVALID
        pads = (p[0], p[0], p[1], p[1])
    if H + pads[0] + pads[1] < d[0] * (kH - 1) + 1 or W + pads[2] + pads[3] < d[1] * (kW - 1) + 1:
        return _INVALID
    return Call(s, pads, d, groups)


def output_memory_format(input, weight):
    """The layout torch's CPU convolution gives its output: channels_last when
    the input or the weight suggests it (oneDNN's rule), else contiguous."""
    if input.dim() != 4:
        return torch.contiguous_format
    cl = torch.channels_last
    if input.is_contiguous() and weight.is_contiguous() and not \
            input.is_contiguous(memory_format=cl) and not weight.is_contiguous(memory_format=cl):
        return torch.contiguous_format   # the common, unambiguous case, without the slow rule
    try:
        from torch._prims_common import suggest_memory_format
    except ImportError:  # pragma: no cover - older torch
        def suggest_memory_format(t):
            cl = t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
            return torch.channels_last if cl else torch.contiguous_format
    if torch.channels_last in (suggest_memory_format(input), suggest_memory_format(weight)):
        return torch.channels_last
    return torch.contiguous_format
