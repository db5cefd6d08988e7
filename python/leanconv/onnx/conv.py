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

from leanconv import _core, _dead_taps as dead_taps, _isa
from leanconv._fold import fold_batchnorm  # noqa: F401  (graph.py folds through here)
from leanconv._params import ConvSpec
from leanconv._plan import Conv2d as _Plan
from leanconv._select import ALGORITHMS, algorithm_id, choose, model_cost, why_unsupported
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

    def __init__(self, node, weight, bias, settings, activation=None, residual=False):
        """weight: None (weights fed at run time), an array, or a WeightSource
        (read and folded when first packed, then dropped: see release())."""
        node.allow("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
        self.node_name = node.name
        self.settings = settings
        self.activation = activation
        self.residual = residual   # the last input is added before the activation
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
        if isinstance(weight, np.ndarray):
            weight = WeightSource(weight.shape, weight.dtype, lambda w=weight, b=bias: (w, b))
        self._source = weight
        self._shape4 = None   # constant weights' shape as a 2-D convolution's
        if weight is not None:
            self._check_weight(weight.shape, weight.dtype)
            rank = len(weight.shape) - 2
            shape = tuple(weight.shape)
            self._shape4 = shape[:2] + (1,) + shape[2:] if len(shape) == 3 else shape
        if rank is not None:
            self._check_rank(rank)
        self.weight = self.bias = None   # raw constant weights, only while packing
        self._plans = {}
        self._windows = {}   # id(plan) -> its live taps' window (None: all)
        self._lock = threading.Lock()
        self.last_plan = None
        self.last_input_shape = None
        self.algorithm_override = None   # set by a memory budget (budget.py)

    def _check_weight(self, shape, dtype):
        if np.dtype(dtype) != np.float32:
            raise unsupported(f"Conv with {np.dtype(dtype)} weights (node {self.node_name}); "
                              f"leanconv computes float32")
        self._check_rank(len(shape) - 2)
        if self.kernel_shape is not None and list(shape[2:]) != self.kernel_shape:
            raise ValueError(f"Conv node {self.node_name}: kernel_shape {self.kernel_shape} does "
                             f"not match the weights' {list(shape[2:])}")

    @property
    def constant_weights(self):
        return self._source is not None

    def _constants(self):
        """(weight, bias) of constant weights, read from the model on first need."""
        if self.weight is None:
            if self._source is None:
                raise RuntimeError(f"Conv node {self.node_name}: weights were released")
            w, b = self._source.load()
            self.weight = self._weight4(w)
            self.bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
        return self.weight, self.bias

    def release(self):
        """Drop the raw weights once packed, when no input shape can need
        another packing (auto_pad SAME pads depend on the input size)."""
        if self._plans and self.auto_pad in ("NOTSET", "VALID"):
            self.weight = self.bias = None
            self._source = None

    @property
    def keeps_weight_source(self):
        return self._source is not None

    @property
    def packed_bytes(self):
        return self.last_plan.packed_bytes if self.last_plan is not None else 0

    def _check_rank(self, rank):
        if rank not in (1, 2):
            raise unsupported(f"{rank}-D Conv (node {self.node_name}); leanconv computes "
                              f"1-D and 2-D")

    def _weight4(self, w):
        self._check_weight(w.shape, w.dtype)
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

    def _live(self, w_shape, stride, pads, dilation, hw):
        """(weight shape, pads, window) of the convolution run on inputs of
        size hw: where some taps read only padding there (dilated layers on
        small maps: deeplabv3's ASPP), the live taps' (leanconv/_dead_taps.py)
        -- the same output for a fraction of the work and weights; else the
        layer's own, window None."""
        spec = ConvSpec.build(w_shape, stride, pads, dilation, self.group)
        found = dead_taps.trimmed_spec(spec, (1, spec.C) + tuple(hw))
        if found is None:
            return tuple(w_shape), pads, None
        live, window = found
        return (live.M, live.Cg, live.kH, live.kW), live.pads, window

    def _plan(self, weight, bias, stride, pads, dilation, hw):
        if weight is not None:  # weights fed at run time: pack for this call
            w_shape, live_pads, window = self._live(weight.shape, stride, pads, dilation, hw)
            if window is not None:
                weight = dead_taps.live_weights(weight, window)
            return _Plan(weight, bias, stride, live_pads, dilation, self.group,
                         algorithm=self._algorithm(w_shape, stride, live_pads, dilation, hw),
                         activation=self.activation)
        key = (stride, pads, dilation, hw, _isa.isa())
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._packing(stride, pads, dilation, hw)
                self._plans[key] = plan
        return plan

    def _packing(self, stride, pads, dilation, hw):
        """A packing for inputs of size hw: one already made where it serves
        (another image size, same padding, the same live taps or more), else
        a new one."""
        w_shape, live_pads, window = self._live(self._w_shape(), stride, pads, dilation, hw)
        released = self._source is None
        if not released:
            algo = self._algorithm(w_shape, stride, live_pads, dilation, hw)
        for key, other in self._plans.items():
            if key[:3] != (stride, pads, dilation):
                continue
            theirs = self._windows.get(id(other))
            if released:   # what prepare packed is all there is
                if dead_taps.covers(theirs, window):
                    return other
            elif theirs == window and other.algorithm == algo and other.isa == _isa.isa():
                return other
        if released:
            raise ValueError(
                f"Conv node {self.node_name}: prepare packed only the kernel taps that read "
                f"the input at the declared input size (the others read only padding there) "
                f"and released the raw weights; inputs of size {hw[0]}x{hw[1]} need the other "
                f"taps too: declare this size in the model, or leave its dims dynamic")
        w, b = self._constants()
        if window is not None:
            w = dead_taps.live_weights(w, window)
        plan = _Plan(w, b, stride, live_pads, dilation, self.group,
                     algorithm=algo, activation=self.activation)
        self._windows[id(plan)] = window
        # packed: the raw copy goes now, not at the end of prepare (the
        # source can read it again), so at most one layer's is ever held
        self.weight = self.bias = None
        return plan

    def _w_shape(self):
        return self._shape4

    @property
    def weight_shape(self):
        """Constant weights' shape (as a 2-D convolution's), None if fed at run time."""
        return self._shape4

    def candidates(self, x_shape, threads):
        """[(algorithm, packed bytes, workspace bytes, cost)] of every algorithm
        that can run this layer on inputs of x_shape, the one 'auto' picks
        first; cost is the C cost model's (kernels/choose.c) for one call.
        All of it at `threads`, auto's pick too: not the process default, or
        the budget's choice would follow the machine's CPU count."""
        shape = tuple(x_shape)
        self._check_shape(shape)
        x4 = shape[:2] + (1,) + shape[2:] if len(shape) == 3 else shape
        w_shape = self._shape4
        stride, pads, dilation = self.geometry(shape, w_shape if len(shape) == 4 else
                                               w_shape[:2] + w_shape[3:])
        w_shape, pads, _ = self._live(w_shape, stride, pads, dilation, x4[2:])
        spec = ConvSpec.build(w_shape, stride, pads, dilation, self.group)
        isa_id = _isa.isa_id()
        geom = spec.geometry(*x4)
        first = self._algorithm(w_shape, stride, pads, dilation, x4[2:], threads)
        out = []
        for name in [first] + [a for a in ALGORITHMS if a != first]:
            if why_unsupported(name, spec, isa_id, geom) is None:
                packed, ws = _core.sizes(algorithm_id(name), isa_id, geom, threads)
                if packed >= 0 and ws >= 0:
                    out.append((name, packed, ws, model_cost(name, isa_id, geom, threads)))
        return out

    def _algorithm(self, w_shape, stride, pads, dilation, hw, threads=None):
        spec = ConvSpec.build(w_shape, stride, pads, dilation, self.group)
        isa_id = _isa.isa_id()
        name = choose(self.algorithm_override or self.settings.algorithm, spec, isa_id, hw, threads)
        if why_unsupported(name, spec, isa_id) is not None:
            name = choose("auto", spec, isa_id, hw, threads)  # e.g. Winograd asked for on a 1x1 layer
        return name

    def plan_for(self, x, w=None, b=None):
        """(plan, 4-D input view, run-time weights' plan or None) for input x."""
        self._check_input(x)
        weight = bias = None
        if self._shape4 is None:   # weights fed at run time
            weight = self._weight4(w)
            bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
            w_shape = weight.shape
        else:
            w_shape = self._shape4
        one_d = x.ndim == 3
        stride, pads, dilation = self.geometry(x.shape, w_shape if not one_d else
                                               w_shape[:2] + w_shape[3:])
        x4 = x[:, :, None, :] if one_d else x
        plan = self._plan(weight, bias, stride, pads, dilation, x4.shape[2:])
        self.last_plan, self.last_input_shape = plan, x4.shape
        return plan, x4

    def _check_input(self, x):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise TypeError(f"Conv node {self.node_name}: leanconv computes float32, got "
                            f"{getattr(x, 'dtype', type(x).__name__)} input")
        if x.ndim not in (3, 4):
            raise unsupported(f"{x.ndim - 2}-D Conv input (node {self.node_name})")
        self._check_shape(x.shape)

    def _check_shape(self, shape):
        if min(shape, default=0) < 1:
            raise ValueError(f"Conv node {self.node_name}: input of shape {tuple(shape)}; "
                             f"leanconv convolves inputs with no empty dimension")

    def output_shape(self, x_shape, w_shape=None):
        """Output shape for an input shape, without packing anything."""
        w_shape = self._shape4 if w_shape is None else tuple(w_shape)
        if len(w_shape) == 3:
            w_shape = w_shape[:2] + (1,) + w_shape[2:]
        one_d = len(x_shape) == 3
        stride, pads, dilation = self.geometry(x_shape, w_shape if not one_d else
                                               w_shape[:2] + w_shape[3:])
        spec = ConvSpec.build(w_shape, stride, pads, dilation, self.group)
        H, W = (1, x_shape[2]) if one_d else x_shape[2:4]
        OH, OW = spec.output_hw(H, W)
        return (x_shape[0], spec.M, OW) if one_d else (x_shape[0], spec.M, OH, OW)

    def _split(self, args):
        """(x, w, b, residual) from a step's inputs."""
        res = args[-1] if self.residual else None
        rest = args[:-1] if self.residual else args
        x, w, b = (list(rest) + [None, None])[:3]
        return x, w, b, res

    def _residual4(self, res, shape):
        """The residual as the 4-D output shape (broadcast if it must be)."""
        if res is None:
            return None
        if not isinstance(res, np.ndarray) or res.dtype != np.float32:
            raise TypeError(f"Conv node {self.node_name}: the fused Add's other input must be "
                            f"float32, got {getattr(res, 'dtype', type(res).__name__)}")
        if np.broadcast_shapes(res.shape, shape) != tuple(shape):
            raise unsupported(f"an Add that broadcasts the Conv output of node "
                              f"{self.node_name} up to {res.shape}")
        if res.shape != tuple(shape):
            res = np.ascontiguousarray(np.broadcast_to(res, shape))
        return res[:, :, None, :] if len(shape) == 3 else res

    def shape_only(self, *args):
        """Zeros of the output's shape: what a schedule's first pass needs of a Conv."""
        x, w, _, res = self._split(args)
        self._check_input(x)
        shape = self.output_shape(x.shape, None if w is None else w.shape)
        self._residual4(res, shape)
        return (np.zeros(shape, dtype=np.float32),)

    def __call__(self, *args):
        x, w, b, res = self._split(args)
        plan, x4 = self.plan_for(x, w, b)
        shape = plan.output_shape(x4.shape)
        y = plan(x4, residual=self._residual4(res, shape if x.ndim == 4 else
                                             shape[:2] + shape[3:]),
                 threads=self.settings.threads)
        return (y[:, :, 0, :] if x.ndim == 3 else y,)

    def into(self, outs, *args):
        """Convolve into outs[0] (preallocated, C-contiguous; it may be the residual)."""
        x, w, b, res = self._split(args)
        plan, x4 = self.plan_for(x, w, b)
        y = outs[0]
        y4 = y[:, :, None, :] if x.ndim == 3 else y
        r4 = self._residual4(res, y.shape)
        if r4 is not None and np.shares_memory(r4, y4):
            r4 = y4   # in place: the very same array, as the epilogue asks
        plan(x4, out=y4, residual=r4, threads=self.settings.threads,
             workspace=self.settings.workspace)

    def bind(self, outs, *args):
        """into(outs, *args) fixed once (a _core.BoundConv), or None when the
        call must be prepared each time: weights fed at run time, or an input,
        output or residual that is not a plain contiguous buffer of its own
        (a strided view, a broadcast residual)."""
        x, w, _, res = self._split(args)
        y = outs[0]
        if self._shape4 is None or y is None:
            return None
        x4 = x[:, :, None, :] if x.ndim == 3 else x
        y4 = y[:, :, None, :] if y.ndim == 3 else y
        r4 = None if res is None else (res[:, :, None, :] if res.ndim == 3 else res)
        for a in (x4, y4, r4):
            if a is not None and not (isinstance(a, np.ndarray) and a.dtype == np.float32 and
                                      a.dtype.isnative and a.flags.c_contiguous):
                return None
        if r4 is not None:
            if r4.shape != y4.shape:
                return None
            if np.shares_memory(r4, y4):
                if r4.ctypes.data != y4.ctypes.data:
                    return None
                r4 = y4   # in place: the very same array, as the epilogue asks
        if np.shares_memory(x4, y4):
            return None   # into() raises the error
        plan, _ = self.plan_for(x)
        return plan.bind(x4, y4, residual=r4, threads=self.settings.threads)

    def workspace_bytes(self, x_shape):
        if self.last_plan is None:
            return 0
        shape = tuple(x_shape)
        return self.last_plan.workspace_bytes(shape[:2] + (1,) + shape[2:] if len(shape) == 3
                                              else shape, threads=self.settings.threads)


class WeightSource:
    """Constant Conv weights not read yet: shape, dtype, and load() -> (weight, bias)."""

    def __init__(self, shape, dtype, load):
        self.shape, self.dtype, self.load = tuple(shape), np.dtype(dtype), load


def fold_affine(weight, bias, scale, shift):
    """Conv weights and bias followed by y * scale + shift per output channel
    (float64 vectors) as one: w' = w * scale, b' = b * scale + shift (w' a
    fresh array: `weight` may be a constant another node still reads)."""
    w = np.array(weight, dtype=np.float32)
    w *= scale.astype(np.float32).reshape((-1,) + (1,) * (weight.ndim - 1))
    b0 = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    return w, (b0 * scale + shift).astype(np.float32)


def clamp_activation(lo, hi):
    """('clamp', lo, hi) for a Clip leanconv can fuse, else None."""
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        return None
    if lo == 0.0 and hi == math.inf:
        return "relu"
    return ("clamp", lo, hi)
