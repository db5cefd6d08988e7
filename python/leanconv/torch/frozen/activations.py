"""The activations freeze fuses into a convolution, recognised in an fx graph.

An Activation is a kind and its constants (ReLU, ReLU6, hardtanh and clamp
with constant bounds are all `clamp`).  On leanconv it runs in the conv's
fused epilogue (`leanconv_form()` is its `activation=` value); on a layer
left on torch, `apply_` runs it in place after torch's conv."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn



@dataclass(frozen=True)
class Activation:
    kind: str               # clamp, hardswish, hardsigmoid, silu, sigmoid, gelu, leaky_relu
    params: tuple = ()      # clamp: (lo, hi); gelu: (approximate,); leaky_relu: (slope,)

    def apply_(self, y):
        """y <- act(y), in place where torch can (y is a fresh conv output)."""
        k, p = self.kind, self.params
        if k == "clamp":
            lo, hi = p
            return y.clamp_(None if lo == -math.inf else lo, None if hi == math.inf else hi)
        if k == "hardswish":
            return F.hardswish(y, inplace=True)
        if k == "hardsigmoid":
            return F.hardsigmoid(y, inplace=True)
        if k == "silu":
            return F.silu(y, inplace=True)
        if k == "sigmoid":
            return y.sigmoid_()
        if k == "leaky_relu":
            return F.leaky_relu(y, p[0], inplace=True)
        if k == "gelu":     # F.gelu has no in-place form; its out= variant may alias
            return torch.ops.aten.gelu.out(y, approximate=p[0], out=y)
        raise AssertionError(k)

    def leanconv_form(self):
        """This activation as lc.Conv2d(activation=...) takes it."""
        if self.kind == "clamp":
            return ("clamp",) + self.params
        if self.kind == "leaky_relu":
            return ("leaky_relu", self.params[0])
        if self.kind == "gelu":
            return "gelu" if self.params[0] == "none" else "gelu_tanh"
        return self.kind


def _clamp(lo, hi):
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
        return None     # a bound computed in the graph: not a constant
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        return None
    return Activation("clamp", (float(lo), float(hi)))


_RELU = Activation("clamp", (0.0, math.inf))
_RELU6 = Activation("clamp", (0.0, 6.0))


def _from_module(m):
    t = type(m)
    if t is nn.ReLU:
        return _RELU
    if t is nn.ReLU6:
        return _RELU6
    if t is nn.Hardtanh:
        return _clamp(m.min_val, m.max_val)
    if t in (nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid):
        return Activation(t.__name__.lower())
    if t is nn.GELU:
        return Activation("gelu", (m.approximate,))
    if t is nn.LeakyReLU:
        return Activation("leaky_relu", (float(m.negative_slope),))
    return None


def _bound(fn, args, kwargs):
    """The arguments of a call to fn (a Python function) by name, or None."""
    try:
        return inspect.signature(fn).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return None


def _from_call(fn, args, kwargs):
    """Activation for fn(x, *args[1:], **kwargs) (function or method form)."""
    if fn in (F.relu, torch.relu, torch.relu_, "relu", "relu_"):
        return _RELU if len(args) == 1 and set(kwargs) <= {"inplace"} else None
    if fn in (F.relu6, "relu6"):
        return _RELU6 if len(args) == 1 and set(kwargs) <= {"inplace"} else None
    if fn is F.hardtanh:
        a = _bound(F.hardtanh, args, kwargs)
        return None if a is None else _clamp(a.get("min_val", -1.0), a.get("max_val", 1.0))
    if fn in (torch.clamp, "clamp", "clamp_", torch.clip, "clip", "clip_"):
        rest = list(args[1:]) + [None] * (3 - len(args))
        lo = kwargs.get("min", rest[0])
        hi = kwargs.get("max", rest[1])
        if set(kwargs) - {"min", "max"} or (lo is None and hi is None):
            return None
        return _clamp(lo, hi)
    if fn in (torch.clamp_min, "clamp_min", "clamp_min_") and len(args) == 2 and not kwargs:
        return _clamp(args[1], None)
    for kind, forms in (("hardswish", (F.hardswish,)), ("hardsigmoid", (F.hardsigmoid,)),
                        ("silu", (F.silu,)),
                        ("sigmoid", (torch.sigmoid, F.sigmoid, "sigmoid", "sigmoid_"))):
        if fn in forms:
            return Activation(kind) if len(args) == 1 and set(kwargs) <= {"inplace"} else None
    if fn is F.gelu:        # a builtin: no signature to bind
        if len(args) > 2 or set(kwargs) - {"approximate"}:
            return None
        approximate = args[1] if len(args) == 2 else kwargs.get("approximate", "none")
        return Activation("gelu", (approximate,)) if approximate in ("none", "tanh") else None
    if fn is F.leaky_relu:
        a = _bound(F.leaky_relu, args, kwargs)
        return None if a is None else Activation("leaky_relu",
                                                 (float(a.get("negative_slope", 0.01)),))
    return None


def match(node, modules):
    """The Activation computed by fx node `node` from its first argument, or None."""
    if not node.args:
        return None
    if node.op == "call_module":
        if len(node.args) != 1 or node.kwargs:
            return None
        return _from_module(modules[node.target])
    if node.op in ("call_function", "call_method"):
        try:
            return _from_call(node.target, node.args, node.kwargs)
        except TypeError:   # an unhashable target
            return None
    return None
