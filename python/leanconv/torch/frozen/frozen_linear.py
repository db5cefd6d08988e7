"""FrozenLinearChain: nn.Linear layers over the last axis of a many-row
tensor (ConvNeXt's pointwise MLP on NHWC tokens), run as leanconv 1x1
convolutions, with the activation between them fused into the epilogue.

A Linear over the last axis of an (..., C) tensor with R rows is a 1x1
convolution of the transposed (C, R) matrix.  A chain Linear -> [act] ->
Linear -> [act] ... whose links have one reader each is transposed once in
and once out, and the values between stay channel-major.  freeze measures the
chain both ways on the example input (interleaved, torch on the one thread it
has inside a frozen call) and takes this form only where it is faster than
torch's own (on this machine torch's Linear on ConvNeXt-T's
56x56x96 tokens ran ~10x slower than the 1x1 convolution)."""
from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch
from torch import nn

from leanconv._params import ConvSpec
from leanconv.torch.frozen import activations, epilogue_speed
from leanconv.torch.frozen.frozen_dense import shared_weights
from leanconv.torch.frozen.threads import frozen_threads

# Chains over fewer rows are left on torch without timing them (a classifier
# head: one row, a matrix-vector product torch does as well).
MIN_ROWS = 16


class FrozenLinearChain(nn.Module):
    def __init__(self, layers):
        """layers: [(weight (M, C) float32, bias (M,) or None, Activation or None)]."""
        super().__init__()
        from leanconv._plan import Conv2d as Plan
        self.in_features = layers[0][0].shape[1]
        self.out_features = layers[-1][0].shape[0]
        self._steps = []
        self.packed_bytes = 0
        for w, b, act in layers:
            M, C = w.shape
            fuse = act is not None and epilogue_speed.fuses(act)
            plan = Plan(w.detach().reshape(M, C, 1, 1).numpy(),
                        None if b is None else b.detach().numpy(),
                        algorithm="im2col", activation=act.leanconv_form() if fuse else None)
            self.packed_bytes += plan.packed_bytes
            self._steps.append((ConvSpec.build((M, C, 1, 1), 1, 0, 1, 1), plan._kernel.run,
                                plan._bias, None if fuse else act, M))
        self._geoms = {}
        self.describe = " -> ".join(
            f"{w.shape[1]}->{w.shape[0]}" + ("" if a is None else f" {a.kind}")
            for w, _, a in layers)
        from leanconv.torch.frozen import custom_op
        self.handle = custom_op.register(self)

    def output_shape(self, x_shape):
        return tuple(x_shape[:-1]) + (self.out_features,)

    def forward(self, x, residual=None):
        if type(x) is not torch.Tensor or torch.compiler.is_compiling():
            from leanconv.torch.frozen import custom_op
            return custom_op.frozen_conv2d(x, self.handle, residual)
        return self.run(x)

    __call__ = forward      # no hooks to run (see FrozenConv2d)

    def run(self, x, residual=None):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"frozen linear layers expect a last axis of {self.in_features}, "
                             f"got {tuple(x.shape)}")
        out_dtype = None
        if x.dtype != torch.float32:
            out_dtype = x.dtype
            x = x.float()
        if torch.is_autocast_enabled("cpu"):
            out_dtype = torch.get_autocast_dtype("cpu")
        lead = tuple(x.shape[:-1])
        R = math.prod(lead)
        cur = x.detach().reshape(R, self.in_features).t().contiguous().numpy().reshape(-1)
        threads = frozen_threads()
        for spec, run, bias, post, M in self._steps:
            geom = self._geoms.get((spec.C, R))
            if geom is None:
                geom = self._geoms[(spec.C, R)] = spec.geometry(1, spec.C, 1, R)
            y = np.empty(M * R, np.float32)
            run(cur, y, bias, geom, threads, None)
            if post is not None:
                post.apply_(torch.from_numpy(y))        # in place
            cur = y
        y = torch.from_numpy(cur).view(self.out_features, R).t().contiguous()
        y = y.view(lead + (self.out_features,))
        return y if out_dtype is None else y.to(out_dtype)

    def __prepare_scriptable__(self):
        raise TypeError("frozen leanconv linear layers cannot be compiled by torch.jit.script; "
                        "use torch.compile or torch.export")

    def extra_repr(self):
        return self.describe


def _only_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _linear(node, modules):
    if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
        return None
    m = modules[node.target]
    return m if type(m) is nn.Linear and m.weight.dtype == torch.float32 else None


def _chains(gm, modules):
    """[(nodes, [(Linear module, act node or None, Activation or None)])] per chain."""
    chains, seen = [], set()
    for node in gm.graph.nodes:
        if node in seen or _linear(node, modules) is None:
            continue
        tm = node.args[0].meta.get("tensor_meta") if isinstance(node.args[0], torch.fx.Node) \
            else None
        if tm is None or not hasattr(tm, "shape") or len(tm.shape) < 2 or \
                tm.dtype != torch.float32 or math.prod(tm.shape[:-1]) < MIN_ROWS:
            continue
        nodes, links, cur = [], [], node
        while cur is not None and _linear(cur, modules) is not None and cur not in seen:
            nodes.append(cur)
            nxt = _only_user(cur)
            act = activations.match(nxt, modules) if nxt is not None and nxt.args and \
                nxt.args[0] is cur else None
            if act is not None:
                nodes.append(nxt)
                links.append((modules[cur.target], act))
                cur = _only_user(nxt)
                if cur is not None and not (cur.args and cur.args[0] is nodes[-1]):
                    cur = None
            else:
                links.append((modules[cur.target], None))
                cur = nxt if nxt is not None and nxt.args and nxt.args[0] is cur else None
        seen.update(nodes)
        chains.append((nodes, links, tuple(tm.shape)))
    return chains


def _timed_pair(ours, theirs, repeats=7):
    """(seconds of ours, of theirs): the fastest of `repeats` runs each, the
    two interleaved so that a busy machine slows both alike (the fastest run
    is the one least disturbed).  Theirs runs as torch's ops do inside a
    frozen call: on one thread (threads.py)."""
    ts = ([], [])
    before = torch.get_num_threads()
    for i in range(repeats + 1):
        for k, fn in enumerate((ours, theirs)):
            if k == 1 and frozen_threads() > 1:
                torch.set_num_threads(1)
            try:
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
            finally:
                torch.set_num_threads(before)
            if i:       # the first round warms up
                ts[k].append(dt)
    return min(ts[0]), min(ts[1])


def _torch_chain(links):
    def run(x):
        for lin, act in links:
            x = lin(x)
            if act is not None:
                x = act.apply_(x)
        return x
    return run


def rewrite_linears(gm, release, trim=lambda: None):
    """Replace each many-row Linear chain of `gm` that runs faster as 1x1
    convolutions (timed here on the example shape) by a FrozenLinearChain;
    release(tensor) drops torch's copy of weights nothing else uses; trim()
    hands freed heap memory back to the system."""
    modules = dict(gm.named_modules())
    calls = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            calls[n.target] = calls.get(n.target, 0) + 1
    replaced = 0
    for nodes, links, x_shape in _chains(gm, modules):
        frozen = FrozenLinearChain([(lin.weight, lin.bias, act) for lin, act in links])
        x = torch.randn(x_shape)
        with torch.inference_mode():
            ours, theirs = _timed_pair(functools.partial(frozen.run, x),
                                       functools.partial(_torch_chain(links), x))
        del x
        trim()          # the timing's activations go back before the next chain's
        if ours >= theirs:
            continue
        name = f"lc_linear_{nodes[0].name}"
        gm.add_submodule(name, frozen)
        last = nodes[-1]
        with gm.graph.inserting_before(last):
            new = gm.graph.call_module(name, (nodes[0].args[0],))
        new.meta = dict(last.meta)
        last.replace_all_uses_with(new)
        for n in reversed(nodes):
            gm.graph.erase_node(n)
        for lin, _ in links:
            target = next(t for t, m in modules.items() if m is lin)
            if calls.get(target) == 1 and not shared_weights(lin, modules):
                for t in (lin.weight, lin.bias):
                    if t is not None:
                        release(t)
        replaced += 1
    return replaced
