"""ONNX Conv on leanconv plans, with BatchNormalization folded in and
Relu/Clip fused into the store.

Weights known at prepare time are packed once per padding and Winograd
variant (the variant depends on the image size, auto_pad SAME on the input
shape), the first time a shape needs them; weights that arrive as graph
inputs are packed on every call.  1-D convolutions run as 2-D ones of height
1; 3-D ones are not supported."""
from __future__ import annotations

import math
import threading

import numpy as np

from leanconv import _isa
from leanconv._params import ConvSpec
from leanconv._plan import Conv2d as _Plan
from leanconv._select import choose, why_unsupported
from leanconv.onnx.node import as_int_list, unsupported

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def same_pads(size, kernel, stride, dilation, upper):
    """(begin, end) padding of auto_pad SAME_UPPER/SAME_LOWER on one axis:
    output = ceil(size / stride); an odd total puts the extra at the end
    (UPPER) or the beginning (LOWER)."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - size)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


class ConvOp:
    """One Conv node (plus what was fused into it)."""

    def __init__(self, node, weight, bias, settings, activation=None):
        node.allow("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
        self.node_name = node.name
        self.settings = settings
        self.activation = activation
        self.auto_pad = node.attr("auto_pad", "NOTSET")
        if self.auto_pad not in AUTO_PADS:
            raise ValueError(f"Conv node {node.name}: auto_pad must be one of {AUTO_PADS}, "
                             f"got {self.auto_pad!r}")
        self.group = int(node.attr("group", 1))
        self.kernel_shape = as_int_list(node.attr("kernel_shape"), "kernel_shape", node)
        self.strides = as_int_list(node.attr("strides"), "strides", node)
        self.dilations = as_int_list(node.attr("dilations"), "dilations", node)
        self.pads = as_int_list(node.attr("pads"), "pads", node)
        rank = None
        for v, div in ((self.kernel_shape, 1), (self.strides, 1), (self.dilations, 1),
                       (self.pads, 2)):
            if v is not None:
                rank = len(v) // div
        if weight is not None:
            rank = weight.ndim - 2
        if rank is not None:
            self._check_rank(rank)
        self.weight = None if weight is None else self._weight4(weight)
        self.bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        self._plans = {}
        self._lock = threading.Lock()
        self.last_plan = None
        self.last_input_shape = None

    def _check_rank(self, rank):
        if rank not in (1, 2):
            raise unsupported(f"{rank}-D Conv (node {self.node_name}); leanconv computes "
                              f"1-D and 2-D")

    def _weight4(self, w):
        if w.dtype != np.float32:
            raise unsupported(f"Conv with {w.dtype} weights (node {self.node_name}); leanconv "
                              f"computes float32")
        self._check_rank(w.ndim - 2)
        if self.kernel_shape is not None and list(w.shape[2:]) != self.kernel_shape:
            raise ValueError(f"Conv node {self.node_name}: kernel_shape {self.kernel_shape} does "
                             f"not match the weights' {list(w.shape[2:])}")
        w = np.ascontiguousarray(w, dtype=np.float32)
        return w[:, :, None, :] if w.ndim == 3 else w

    def geometry(self, x_shape, w_shape):
        """(stride, (top, bottom, left, right), dilation) for a 2-D call on this input."""
        nd = len(x_shape) - 2
        k = w_shape[2:]
        s = self.strides or [1] * nd
        d = self.dilations or [1] * nd
        if len(s) != nd or len(d) != nd:
            raise ValueError(f"Conv node {self.node_name}: strides/dilations have the wrong length "
                             f"for a {nd}-D convolution")
        if self.auto_pad == "NOTSET":
            p = self.pads or [0] * (2 * nd)
            if len(p) != 2 * nd:
                raise ValueError(f"Conv node {self.node_name}: pads must have {2 * nd} values")
            begin, end = p[:nd], p[nd:]
        elif self.auto_pad == "VALID":
            begin, end = [0] * nd, [0] * nd
        else:
            be = [same_pads(x_shape[2 + i], k[-nd + i], s[i], d[i], self.auto_pad == "SAME_UPPER")
                  for i in range(nd)]
            begin, end = [b for b, _ in be], [e for _, e in be]
        if nd == 1:
            return (1, s[0]), (0, 0, begin[0], end[0]), (1, d[0])
        return (s[0], s[1]), (begin[0], end[0], begin[1], end[1]), (d[0], d[1])

    def _plan(self, weight, bias, stride, pads, dilation, hw):
        if weight is not self.weight:  # weights fed at run time: pack for this call
            return _Plan(weight, bias, stride, pads, dilation, self.group,
                         algorithm=self._algorithm(weight.shape, stride, pads, dilation, hw),
                         activation=self.activation)
        key = (stride, pads, dilation, hw, _isa.isa())
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                algo = self._algorithm(weight.shape, stride, pads, dilation, hw)
                for other in self._plans.values():   # same packing, other image size
                    if other.algorithm == algo and (other.spec.stride, other.spec.pads) == \
                            (stride, pads) and other.isa == _isa.isa():
                        plan = other
                        break
                else:
                    plan = _Plan(weight, bias, stride, pads, dilation, self.group,
                                 algorithm=algo, activation=self.activation)
                self._plans[key] = plan
        return plan

    def _algorithm(self, w_shape, stride, pads, dilation, hw):
        spec = ConvSpec.build(w_shape, stride, pads, dilation, self.group)
        isa_id = _isa.isa_id()
        name = choose(self.settings.algorithm, spec, isa_id, hw)
        if why_unsupported(name, spec, isa_id) is not None:
            name = choose("auto", spec, isa_id, hw)  # e.g. Winograd asked for on a 1x1 layer
        return name

    def __call__(self, x, w=None, b=None):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise TypeError(f"Conv node {self.node_name}: leanconv computes float32, got "
                            f"{getattr(x, 'dtype', type(x).__name__)} input")
        if x.ndim not in (3, 4):
            raise unsupported(f"{x.ndim - 2}-D Conv input (node {self.node_name})")
        weight, bias = self.weight, self.bias
        if weight is None:
            weight = self._weight4(w)
            bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
        one_d = x.ndim == 3
        stride, pads, dilation = self.geometry(x.shape, weight.shape if not one_d else
                                               weight.shape[:2] + weight.shape[3:])
        x4 = x[:, :, None, :] if one_d else x
        plan = self._plan(weight, bias, stride, pads, dilation, x4.shape[2:])
        self.last_plan, self.last_input_shape = plan, x4.shape
        y = plan(x4, threads=self.settings.threads)
        return (y[:, :, 0, :] if one_d else y,)


def fold_batchnorm(weight, bias, scale, beta, mean, var, eps):
    """Conv weights and bias with an inference BatchNormalization folded in,
    computed in float64: w' = w * s, b' = (b - mean) * s + beta, s = scale / sqrt(var + eps)."""
    s = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    w = weight.astype(np.float64) * s.reshape((-1,) + (1,) * (weight.ndim - 1))
    b0 = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    b = (b0 - mean.astype(np.float64)) * s + beta.astype(np.float64)
    return w.astype(np.float32), b.astype(np.float32)


def clamp_activation(lo, hi):
    """('clamp', lo, hi) for a Clip leanconv can fuse, else None."""
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        return None
    if lo == 0.0 and hi == math.inf:
        return "relu"
    return ("clamp", lo, hi)
