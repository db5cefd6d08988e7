"""FrozenPool2d: max / average / adaptive-average pooling of a frozen model
run by leanconv's C pooling (kernels/pool.c) instead of torch's.

torch's NCHW max_pool2d runs one thread-unfriendly scalar loop: on ResNet-18's
3x3/2 pool over 64x112x112 it takes ~7x as long as leanconv's (8.7 vs 1.2 ms,
one thread), a quarter of the frozen model's time.  The module keeps torch's
own pooling callable and uses it for anything the C kernel does not take
(other dtypes or ranks, torch.compile/export tracing, autocast), so outputs
and behaviour are torch's."""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from leanconv import _bound_pool
from leanconv.torch.frozen.threads import frozen_threads


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _out_len(size, k, s, pad, dil, ceil_mode):
    """torch's pooling output length (aten pooling_output_shape): in ceil mode
    a last window starting past the input and its begin padding is dropped."""
    span = size + 2 * pad - dil * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + pad:
        out -= 1
    return out


class FrozenPool2d(nn.Module):
    """One pooling node; `window(H, W)` gives its kernel/stride/pads for an
    input size, `torch_fn` is torch's own op for everything else."""

    def __init__(self, is_max, window, torch_fn, count_include_pad=False, describe=""):
        super().__init__()
        self.is_max = is_max
        self.window = window
        self.torch_fn = torch_fn
        self.count_include_pad = count_include_pad
        self.describe = describe
        self._geoms = {}

    def _geometry(self, shape):
        g = self._geoms.get(shape)
        if g is None:
            N, C, H, W = shape
            w = self.window(H, W)
            if w is not None:
                (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode = w
                OH = _out_len(H, kh, sh, ph, dh, ceil_mode)
                OW = _out_len(W, kw, sw, pw, dw, ceil_mode)
            if w is None or OH <= 0 or OW <= 0 or 2 * ph > kh or 2 * pw > kw:
                g = None        # torch's op runs (and gives its error for a bad window)
            else:
                g = ((N * C, H, W, OH, OW, kh, kw, sh, sw, dh, dw, ph, pw, ph, pw),
                     (N, C, OH, OW))
            self._geoms[shape] = g
        return g

    def forward(self, x):
        if type(x) is not torch.Tensor or x.dtype != torch.float32 or x.dim() != 4 or \
                x.device.type != "cpu" or x.requires_grad or torch.compiler.is_compiling() \
                or torch.is_autocast_enabled("cpu"):
            return self.torch_fn(x)
        g = self._geometry(x.shape)
        if g is None or x.numel() == 0:
            return self.torch_fn(x)
        y = torch.empty(g[1], dtype=torch.float32)
        self.run_into(x.contiguous().numpy(), y.numpy(), frozen_threads())
        return y

    def run_into(self, x, y, threads):
        """Pool x, a float32 (N, C, H, W) NumPy array, into y (its pooled
        shape) in leanconv's C (the call bind makes); False, with nothing
        written, for what torch's op must run (another dtype or rank, a
        window the C kernel lacks)."""
        call = self.bind(y, np.ascontiguousarray(x), threads)
        if call is None:
            return False
        _bound_pool.run(call)
        return True

    def bind(self, y, x, threads):
        """The frozen schedule's C call pooling x into y, buffers it holds (a
        _core.BoundPool), or None where run_into (or torch) must run."""
        g = self._geometry(x.shape) if x.ndim == 4 and x.dtype == np.float32 else None
        if g is None or x.size == 0 or not _bound_pool.bindable(x, y):
            return None
        geom = g[0]
        planes, H, W, OH, OW, kh, kw = geom[:7]
        if not self.is_max and (OH, OW, kh, kw) == (1, 1, H, W) and not any(geom[11:]):
            return _bound_pool.global_avg_pool(y, x, threads)
        return _bound_pool.pool2d(y, x, geom, self.is_max, self.count_include_pad, threads)

    def __prepare_scriptable__(self):
        raise TypeError("a frozen leanconv pooling cannot be compiled by torch.jit.script; "
                        "use torch.compile or torch.export")

    def extra_repr(self):
        return self.describe


def _fixed(k, s, p, d, ceil_mode):
    w = (_pair(k), _pair(s if s else k), _pair(p), _pair(d), bool(ceil_mode))
    return lambda H, W: w


def _adaptive(output_size):
    """Adaptive average pooling as a plain one where torch's windows are all
    alike: the output divides the input (global pooling is 1x1)."""
    oh, ow = _pair(output_size)

    def window(H, W):
        oh_, ow_ = oh or H, ow or W     # None keeps that dimension
        if H % oh_ or W % ow_:
            return None
        kh, kw = H // oh_, W // ow_
        return (kh, kw), (kh, kw), (0, 0), (1, 1), False
    return window


def replacement(node, modules):
    """A FrozenPool2d for an fx pooling node, or None when it is not one
    leanconv runs (indices wanted, a divisor override, a non-constant size)."""
    if node.op == "call_module":
        m = modules[node.target]
        if len(node.args) != 1 or node.kwargs:
            return None
        if type(m) is nn.MaxPool2d and not m.return_indices:
            return FrozenPool2d(True, _fixed(m.kernel_size, m.stride, m.padding, m.dilation,
                                             m.ceil_mode), m, describe=m.extra_repr())
        if type(m) is nn.AvgPool2d and m.divisor_override is None:
            return FrozenPool2d(False, _fixed(m.kernel_size, m.stride, m.padding, 1,
                                              m.ceil_mode), m, m.count_include_pad,
                                describe=m.extra_repr())
        if type(m) is nn.AdaptiveAvgPool2d:
            return FrozenPool2d(False, _adaptive(m.output_size), m, describe=m.extra_repr())
        return None
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        size = node.args[1] if len(node.args) == 2 else node.kwargs.get("output_size")
        if len(node.args) + len(node.kwargs) != 2 or isinstance(size, torch.fx.Node) or \
                not (isinstance(size, int) or (isinstance(size, (tuple, list)) and len(size) == 2
                                               and all(isinstance(s, (int, type(None)))
                                                       for s in size))):
            return None
        return FrozenPool2d(False, _adaptive(size),
                            functools.partial(F.adaptive_avg_pool2d, output_size=size),
                            describe=f"output_size={size}")
    return None


def rewrite_pools(gm):
    """Replace every pooling node of `gm` that leanconv runs by a FrozenPool2d."""
    graph = gm.graph
    modules = dict(gm.named_modules())
    count = 0
    for node in list(graph.nodes):
        if node.op not in ("call_module", "call_function"):
            continue
        frozen = replacement(node, modules)
        if frozen is None:
            continue
        name = f"lc_pool_{node.name}"
        gm.add_submodule(name, frozen)
        with graph.inserting_before(node):
            new = graph.call_module(name, (node.args[0],))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        count += 1
    return count
