"""Pooling and local response normalisation: MaxPool, AveragePool,
GlobalAveragePool (any number of spatial axes) and LRN.  In a compiled
schedule 2-D float32 pooling runs in C (kernels/pool.c) and float32 LRN too
(kernels/lrn.c), on leanconv's threads; the NumPy forms below serve
everything else.

A pool is computed as one strided slice per kernel offset over an input
padded to cover every window (explicit pads plus, in ceil_mode, the extra
the last window needs), reduced with max or sum: k_h*k_w vectorised NumPy
operations, no Python loop over pixels."""
from __future__ import annotations

import itertools
import math

import numpy as np

from leanconv import _bound_pool, _core, _isa, _threads
from leanconv.onnx.conv import AUTO_PADS, same_pads
from leanconv.onnx.node import as_int_list, unsupported
from leanconv.onnx.program import Step


def pool_geometry(size, k, s, d, begin, end, ceil_mode):
    """Output length and the extra end padding the last window reaches into."""
    extent = (k - 1) * d + 1
    span = size + begin + end - extent
    if span < 0:
        raise ValueError(f"pooling window of extent {extent} is larger than the padded input "
                         f"{size + begin + end}")
    out = span // s + 1
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + begin:   # a last window starting in the end padding is dropped
            out -= 1
    extra = max(0, (out - 1) * s + extent - (size + begin + end))
    return out, extra


class Pool:
    def __init__(self, node, kind, settings=None):
        self.settings = settings
        allowed = ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"]
        allowed += ["storage_order"] if kind == "max" else ["count_include_pad"]
        node.allow(*allowed)
        if kind == "max" and node.n_outputs() > 1:
            raise unsupported(f"MaxPool's Indices output (node {node.name})")
        self.name = node.name
        self.kind = kind
        self.kernel = as_int_list(node.attr("kernel_shape"), "kernel_shape", node)
        if not self.kernel:
            raise ValueError(f"{node.op_type} node {node.name} needs kernel_shape")
        nd = len(self.kernel)
        self.strides = as_int_list(node.attr("strides"), "strides", node) or [1] * nd
        self.dilations = as_int_list(node.attr("dilations"), "dilations", node) or [1] * nd
        self.pads = as_int_list(node.attr("pads"), "pads", node) or [0] * (2 * nd)
        self.auto_pad = node.attr("auto_pad", "NOTSET")
        if self.auto_pad not in AUTO_PADS:
            raise ValueError(f"{node.op_type} node {node.name}: unknown auto_pad {self.auto_pad!r}")
        self.ceil_mode = int(node.attr("ceil_mode", 0)) == 1
        self._c_geom = None   # (input shape, kernels/pool.c geometry) of the last C call
        self.count_include_pad = int(node.attr("count_include_pad", 0)) == 1
        if len(self.strides) != nd or len(self.dilations) != nd or len(self.pads) != 2 * nd:
            raise ValueError(f"{node.op_type} node {node.name}: kernel_shape, strides, dilations "
                             f"and pads disagree on the number of spatial axes")
        for what, values, least in (("kernel_shape", self.kernel, 1), ("strides", self.strides, 1),
                                    ("dilations", self.dilations, 1), ("pads", self.pads, 0)):
            if min(values) < least:
                raise ValueError(f"{node.op_type} node {node.name}: {what} must be >= {least}, "
                                 f"got {values}")

    def _pads(self, spatial):
        nd = len(self.kernel)
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            be = [same_pads(spatial[i], self.kernel[i], self.strides[i], self.dilations[i],
                            self.auto_pad == "SAME_UPPER") for i in range(nd)]
            return [b for b, _ in be], [e for _, e in be]
        if self.auto_pad == "VALID":
            return [0] * nd, [0] * nd
        return self.pads[:nd], self.pads[nd:]

    def _geometry(self, x):
        """(explicit begin pads, end pads, [(output length, extra end padding)] per axis)."""
        nd = len(self.kernel)
        if x.ndim != nd + 2:
            raise ValueError(f"pool node {self.name}: input rank {x.ndim} does not match a "
                             f"{nd}-D kernel")
        spatial = x.shape[2:]
        begin, end = self._pads(spatial)
        geo = [pool_geometry(spatial[i], self.kernel[i], self.strides[i], self.dilations[i],
                             begin[i], end[i], self.ceil_mode and self.auto_pad == "NOTSET")
               for i in range(nd)]
        return begin, end, geo

    def into(self, outs, x):
        """2-D float32: leanconv's C pooling on its threads (the call bind
        makes); else NumPy."""
        call = self.bind(outs, x)
        if call is None:
            np.copyto(outs[0], self(x)[0])
        else:
            _bound_pool.run(call)

    def bind(self, outs, x):
        """The schedule's C call for these buffers (a _core.BoundPool), or None
        where into() must run (not 2-D float32 contiguous)."""
        if not _bound_pool.bindable(x, outs[0]):
            return None
        return _bound_pool.pool2d(outs[0], x, self._c_geometry(x.shape), self.kind == "max",
                                  self.count_include_pad, self.settings.threads)

    def _c_geometry(self, shape):
        """kernels/pool.c's geometry tuple for a 4-D input shape (the last one
        kept: a schedule calls with one shape, and this is Python per call)."""
        cached = self._c_geom
        if cached is not None and cached[0] == shape:
            return cached[1]
        begin, end, geo = self._geometry(np.broadcast_to(np.float32(0), shape))
        N, C, H, W = shape
        geom = (N * C, H, W, geo[0][0], geo[1][0], self.kernel[0], self.kernel[1],
                self.strides[0], self.strides[1], self.dilations[0], self.dilations[1],
                begin[0], begin[1], end[0], end[1])
        self._c_geom = (shape, geom)
        return geom

    def __call__(self, x):
        nd = len(self.kernel)
        spatial = x.shape[2:]
        begin, end, geo = self._geometry(x)
        out = [o for o, _ in geo]
        full_end = [end[i] + geo[i][1] for i in range(nd)]
        if self.kind == "max":
            fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        else:
            fill = 0
        padded = self._pad(x, begin, full_end, fill)
        acc = self._reduce(padded, out, np.maximum if self.kind == "max" else np.add)
        if self.kind == "max":
            return (acc,)
        # divisor: positions of the input (and of the explicit pads when counted)
        mask = np.zeros(tuple(spatial[i] + begin[i] + full_end[i] for i in range(nd)), x.dtype)
        if self.count_include_pad:
            mask[tuple(slice(0, spatial[i] + begin[i] + end[i]) for i in range(nd))] = 1
        else:
            mask[tuple(slice(begin[i], begin[i] + spatial[i]) for i in range(nd))] = 1
        count = self._reduce(mask, out, np.add)
        return ((acc / count).astype(x.dtype, copy=False),)

    @staticmethod
    def _pad(x, begin, end, fill):
        if not any(begin) and not any(end):
            return x
        nd = len(begin)
        shape = x.shape[:-nd] + tuple(x.shape[-nd + i] + begin[i] + end[i] for i in range(nd))
        padded = np.full(shape, fill, dtype=x.dtype)
        padded[(...,) + tuple(slice(begin[i], begin[i] + x.shape[-nd + i]) for i in range(nd))] = x
        return padded

    def _reduce(self, a, out, op):
        nd = len(self.kernel)
        acc = None
        for offs in itertools.product(*(range(k) for k in self.kernel)):
            sl = tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                       for o, d, n, s in zip(offs, self.dilations, out, self.strides))
            view = a[(...,) + sl] if a.ndim > nd else a[sl]
            acc = view.copy() if acc is None else op(acc, view, out=acc)
        return acc


    def workspace(self, x):
        """Scratch of one call: in C (2-D float32) the row buffers it allocates
        (kernels/pool.c; its tables are the bound call's, BoundPool.held_bytes);
        in NumPy the padded copy, the result and (average) the divisor."""
        if x.ndim == 4 and x.dtype == np.float32:
            return _core.pool2d_scratch_bytes(self._c_geometry(x.shape), self.kind == "max",
                                              self.count_include_pad,
                                              _threads.resolve(self.settings and self.settings.threads),
                                              _isa.isa_id())
        nd = len(self.kernel)
        spatial = x.shape[2:]
        begin, end, geo = self._geometry(x)
        padded = int(np.prod([spatial[i] + begin[i] + end[i] + geo[i][1] for i in range(nd)]))
        out = int(np.prod([o for o, _ in geo]))
        rows = x.shape[0] * x.shape[1]
        own = rows * padded if any(begin) or any(end) or any(e for _, e in geo) else 0
        return x.itemsize * (own + rows * out + (2 * (padded + out) if self.kind == "avg" else 0))


def build_maxpool(node, ctx):
    pool = Pool(node, "max", ctx.settings)
    return Step(node, pool, into=pool.into, workspace=pool.workspace, bind=pool.bind)


def build_averagepool(node, ctx):
    pool = Pool(node, "avg", ctx.settings)
    return Step(node, pool, into=pool.into, workspace=pool.workspace, bind=pool.bind)


def build_globalaveragepool(node, ctx):
    node.allow()
    settings = ctx.settings  # not ctx: a closure over ctx would keep the ModelProto alive

    def gap(x):
        return (x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64)
                .astype(x.dtype),)

    def gap_bind(outs, x):
        return _bound_pool.global_avg_pool(outs[0], x, settings.threads)

    def gap_into(outs, x):
        call = gap_bind(outs, x)
        if call is None:
            np.copyto(outs[0], gap(x)[0])
        else:
            _bound_pool.run(call)
    return Step(node, gap, into=gap_into, bind=gap_bind)


def build_globalmaxpool(node, ctx):
    """GlobalMaxPool: the largest value of each (image, channel) over the
    spatial axes (NaN where a plane holds one, as NumPy's max)."""
    node.allow()

    def gmp(x):
        if x.ndim < 3:
            raise ValueError(f"GlobalMaxPool node {node.name}: input of rank {x.ndim}, needs "
                             f"(N, C, spatial...)")
        return (x.max(axis=tuple(range(2, x.ndim)), keepdims=True),)
    return Step(node, gmp)


def build_lrn(node, ctx):
    node.allow("alpha", "beta", "bias", "size")
    alpha = float(node.attr("alpha", 1e-4))
    beta = float(node.attr("beta", 0.75))
    bias = float(node.attr("bias", 1.0))
    size = node.attr("size")
    if size is None or int(size) < 1:
        raise ValueError(f"LRN node {node.name} needs a positive size")
    size = int(size)
    lo = (size - 1) // 2   # channels before c in its window (size - 1 - lo after)

    def lrn(x):
        sq = np.square(x.astype(np.float64))
        C = x.shape[1]
        pad = np.zeros((x.shape[0], C + size - 1) + x.shape[2:])
        pad[:, lo:lo + C] = sq
        csum = np.cumsum(pad, axis=1)
        csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
        window = csum[:, size:size + C] - csum[:, :C]
        return ((x / (bias + alpha / size * window) ** beta).astype(x.dtype),)

    def lrn_into(outs, x):
        """float32 with channels: leanconv's C (kernels/lrn.c) on its threads."""
        if x.dtype != np.float32 or x.ndim < 2 or not x.flags.c_contiguous:
            np.copyto(outs[0], lrn(x)[0])
            return
        hw = math.prod(x.shape[2:])   # (not np.prod: see ops_math.softmax_into)
        _core.lrn(x.reshape(-1), outs[0].reshape(-1), x.shape[0], x.shape[1], hw, size, alpha,
                  beta, bias, _threads.resolve(settings.threads), _isa.isa_id())
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    return Step(node, lrn, into=lrn_into)
