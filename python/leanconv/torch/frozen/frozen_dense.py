"""FrozenDense: a classifier head (nn.Linear on a few rows) of a frozen model,
run by leanconv's C dense kernel (leanconv/_dense.py, kernels/dense.c) on
leanconv's threads, its weights held once, in the kernel's panels.

Why: torch runs a frozen model's own ops on one thread (threads.py), and a
head's weights are big and cold (MobileNetV2's 1280 x 1000 is 5 MB): the C
kernel splits their stream over the model's threads.  MobileNetV2 224, one
thread: torch's Linear 0.123 ms, leanconv.onnx's dense step on the same
weights 0.09.  torch's weight and bias are released once packed (the frozen
module's state_dict holds the panels, not a training checkpoint).

Inputs the C kernel does not take -- more than _dense.MAX_ROWS rows, another
dtype, autocast, torch.compile / export tracing -- run as torch ops on a view
of the panels, so they keep torch's semantics (the dtype autocast gives,
traceable code) without a second copy of the weights."""
from __future__ import annotations

import math

import torch
from torch import nn

from leanconv import _dense
from leanconv.torch.frozen.threads import frozen_threads


class FrozenDense(nn.Module):
    def __init__(self, linear, in_place=False):
        """linear: an nn.Linear with float32 weights.  in_place: the caller
        releases linear's weight after this, so its memory may take the
        panels (_dense.pack_in_place) -- done only where nothing else holds
        that memory (a state_dict taken before, a view: _sole_holder), else
        the weights are read, not changed, and packed into a new array."""
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        packed = None
        if in_place and _sole_holder(linear.weight):
            w = linear.weight.detach()
            flat = _dense.pack_in_place(w.numpy())
            packed = None if flat is None else w.view(-1)
        if packed is None:
            packed = torch.from_numpy(_dense.pack(linear.weight.detach().numpy()))
        self.register_buffer("packed_weight", packed)
        bias = None if linear.bias is None else linear.bias.detach().clone().contiguous()
        self.register_buffer("bias", bias)
        self.packed_bytes = packed.numel() * 4

    def _c_takes(self, x):
        return type(x) is torch.Tensor and x.dtype == torch.float32 and \
            x.device.type == "cpu" and not x.requires_grad and x.dim() >= 1 and \
            x.shape[-1] == self.in_features and \
            not torch.compiler.is_compiling() and not torch.is_autocast_enabled("cpu")

    def forward(self, x):
        if self._c_takes(x):
            rows = math.prod(x.shape[:-1])
            if 0 < rows <= _dense.MAX_ROWS:
                x2 = x.reshape(rows, self.in_features).contiguous().numpy()
                y = torch.empty(tuple(x.shape[:-1]) + (self.out_features,))
                self.run_into(x2, y.numpy().reshape(rows, self.out_features), frozen_threads())
                return y
        return self.torch_forward(x)

    def run_into(self, x, y, threads):
        """y = x W^T + b in C for a NumPy x the kernel takes (_dense.c_runs)."""
        b = None if self.bias is None else self.bias.numpy()
        _dense.run_into(x, y, self.packed_weight.numpy(), b, self.out_features, threads)

    def bind(self, y, x, threads):
        """The frozen schedule's C call y = x W^T + b on these NumPy buffers
        (a _core.BoundDense, holding them), or None where `into` must run:
        either not C-contiguous (a reshape would copy, and the call would
        read the copy), or not what the kernel takes (_dense.c_runs)."""
        if y is None or x.ndim < 1 or not (x.flags.c_contiguous and y.flags.c_contiguous):
            return None
        b = None if self.bias is None else self.bias.numpy()
        return _dense.bind(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]),
                           self.packed_weight.numpy(), b, self.out_features, threads)

    def torch_forward(self, x):
        """x W^T + b as torch ops on the panels: (rows, K) @ (P, K, 16) -> (P, rows, 16)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"a frozen Linear expects a last axis of {self.in_features}, "
                             f"got input of shape {tuple(x.shape)}")
        lead = tuple(x.shape[:-1])
        x2 = x.reshape(-1, self.in_features)
        panels = self.packed_weight.view(-1, self.in_features, _dense.PANEL)
        y = torch.matmul(x2, panels.to(x2.dtype) if x2.dtype != panels.dtype else panels)
        y = y.permute(1, 0, 2).reshape(x2.shape[0], -1)[:, :self.out_features]
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(lead + (self.out_features,))

    def __prepare_scriptable__(self):
        raise TypeError("a frozen leanconv Linear cannot be compiled by torch.jit.script; "
                        "use torch.compile or torch.export")

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None} (leanconv C, weights in 16-row panels)"


def _sole_holder(param):
    """True when `param` is the only tensor on its storage (no view, no
    detached copy such as a state_dict taken earlier keeps it): writing the
    panels over it then changes nothing anyone else can read.  torch has no
    public count of a storage's holders; without the private one, False (the
    weights are then copied, as before)."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None or param.storage_offset() != 0 or not param.is_contiguous():
        return False
    storage = param.untyped_storage()
    # holders: the parameter's tensor and `storage` here
    return storage.nbytes() == param.numel() * param.element_size() and \
        use_count(storage._cdata) == 2


def _rows(node):
    tm = node.args[0].meta.get("tensor_meta") if len(node.args) == 1 and not node.kwargs and \
        isinstance(node.args[0], torch.fx.Node) else None
    if tm is None or not hasattr(tm, "shape") or len(tm.shape) < 1 or \
            tm.dtype != torch.float32:
        return None
    return math.prod(tm.shape[:-1])


def rewrite_dense(gm, release):
    """Replace each nn.Linear of `gm` called on at most _dense.MAX_ROWS float32
    rows (by the example's shapes) by a FrozenDense; release(tensor) drops
    torch's weight and bias where no other module holds them (tied weights
    keep theirs)."""
    modules = dict(gm.named_modules())
    calls = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            calls.setdefault(n.target, []).append(n)
    replaced = 0
    for target, nodes in calls.items():
        m = modules[target]
        if type(m) is not nn.Linear or m.weight.dtype != torch.float32 or \
                (m.bias is not None and m.bias.dtype != torch.float32):
            continue
        rows = [_rows(n) for n in nodes]
        if any(r is None or not 0 < r <= _dense.MAX_ROWS for r in rows):
            continue      # a many-row call: torch's (or frozen_linear's) GEMM
        shared = shared_weights(m, modules)
        frozen = FrozenDense(m, in_place=not shared)
        name = f"lc_dense_{nodes[0].name}"
        gm.add_submodule(name, frozen)
        for node in nodes:
            node.target = name
        if not shared:
            for t in (m.weight, m.bias):
                if t is not None:
                    release(t)
        replaced += 1
    return replaced


def shared_weights(lin, modules):
    """True when another module holds lin's weight or bias too (tied weights)."""
    mine = {id(lin.weight), id(lin.bias)}
    return any(m is not lin and any(id(p) in mine for p in m.parameters(recurse=False))
               for m in modules.values())
