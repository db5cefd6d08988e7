"""Channels-last islands of an fx graph computed in NCHW, before freeze
finds its convolutions (as leanconv.onnx's rewrite.channels_first does for
an ONNX graph).

An island is permute(x, 0,2,3,1) of a 4-D tensor, then only ops that act on
each position's channel vector alone -- nn.Linear, LayerNorm over the last
axis, activations -- each the only reader of the one before, closed by
permute(., 0,3,1,2).  ConvNeXt's blocks are such islands (their MLP is most
of the model's multiply-adds).  In NCHW:
- each Linear becomes a 1x1 nn.Conv2d on a view of its weight (no copy),
  which freeze then packs, fuses (the activation after it, a residual add)
  and schedules like any other convolution, on leanconv's threads;
- each LayerNorm becomes a ChannelLayerNorm (frozen_norm.py); when a Linear
  reads it, its scale and bias fold into that Linear's weights;
- a constant per-channel scale multiplying the island's result (ConvNeXt's
  layer scale) folds into the last Linear;
- both permutes disappear.
Before, the island ran as torch ops on one thread inside a frozen call, with
transposes around leanconv's Linear chains (frozen_linear.py): ConvNeXt-T
gained 1.18x from a second thread.

Also: torchvision's stochastic_depth called with training=False returns its
input; the call is dropped, so that a residual add after it fuses.

A pattern that does not match exactly is left as it is.  The rewritten
graph's shapes are propagated again (capture.py)."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from leanconv._fold import fold_linear_affine
from leanconv.torch.frozen import activations
from leanconv.torch.frozen.frozen_norm import ChannelLayerNorm

TO_LAST = (0, 2, 3, 1)
TO_FIRST = (0, 3, 1, 2)
_MULS = (operator.mul, torch.mul)


def _meta(node):
    tm = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return tm if tm is not None and hasattr(tm, "shape") else None


def _permutation(node):
    """(input node, dims) if `node` is a permute, else None."""
    if node.op == "call_method" and node.target == "permute" and not node.kwargs:
        src, *dims = node.args
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = dims[0]
    elif node.op == "call_function" and node.target is torch.permute and \
            len(node.args) == 2 and not node.kwargs:
        src, dims = node.args
    else:
        return None
    if not isinstance(src, torch.fx.Node) or not all(isinstance(d, int) for d in dims):
        return None
    return src, tuple(d % 4 for d in dims) if len(dims) == 4 else tuple(dims)


def _only_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _get_attr(gm, node):
    obj = gm
    for part in node.target.split("."):
        obj = getattr(obj, part)
    return obj


def _called_once(gm, modules, target):
    m = modules[target]
    calls = sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == target)
    tied = any(o is not m and any(p is q for p in m.parameters(recurse=False)
                                  for q in o.parameters(recurse=False))
               for o in modules.values())
    return calls == 1 and not tied


def _layernorm(node, gm, modules, C):
    """(weight, bias, eps) of a LayerNorm over the last axis of C channels, or None."""
    if node.op == "call_module":
        m = modules[node.target]
        if type(m) is not nn.LayerNorm or len(node.args) != 1 or node.kwargs or \
                tuple(m.normalized_shape) != (C,) or not _called_once(gm, modules, node.target):
            return None
        return m.weight, m.bias, m.eps
    if node.op == "call_function" and node.target in (F.layer_norm, torch.layer_norm):
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        if len(node.args) > len(names) or set(node.kwargs) - set(names) - {"cudnn_enable"}:
            return None
        a = {"weight": None, "bias": None, "eps": 1e-5, **dict(zip(names, node.args)),
             **node.kwargs}
        if tuple(a["normalized_shape"]) != (C,) or not isinstance(a["eps"], float):
            return None
        wb = []
        for t in (a["weight"], a["bias"]):
            if isinstance(t, torch.fx.Node):
                if t.op != "get_attr":
                    return None
                t = _get_attr(gm, t)
            wb.append(t)
        return wb[0], wb[1], a["eps"]
    return None


def _linear(node, modules, gm, C):
    if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
        return None
    m = modules[node.target]
    if type(m) is not nn.Linear or m.in_features != C or m.weight.dtype != torch.float32 or \
            not _called_once(gm, modules, node.target):
        return None
    return m


def _island(p, gm, modules):
    """[(kind, node, data)] of the island that permute node `p` opens, and
    the node that closes it, or None."""
    perm = _permutation(p)
    tm = _meta(perm[0]) if perm else None
    if perm is None or perm[1] != TO_LAST or tm is None or len(tm.shape) != 4 or \
            tm.dtype != torch.float32:
        return None
    C = tm.shape[1]
    links, cur = [], p
    while True:
        u = _only_user(cur)
        if u is None or not u.args or u.args[0] is not cur:
            return None
        back = _permutation(u)
        if back is not None:
            if back[1] != TO_FIRST or not any(k != "act" for k, _, _ in links):
                return None
            return links, u
        norm = _layernorm(u, gm, modules, C)
        lin = None if norm is not None else _linear(u, modules, gm, C)
        act = None if norm or lin else activations.match(u, modules)
        if norm is not None:
            links.append(("norm", u, norm))
        elif lin is not None:
            links.append(("linear", u, lin))
            C = lin.out_features
        elif act is not None and not (u.op == "call_module" and
                                      getattr(modules[u.target], "inplace", False)):
            links.append(("act", u, act))
        else:
            return None
        cur = u


def _layer_scale(q, gm, C):
    """(mul node, scale (C,) tensor) if the island's result is only read by a
    multiplication with a constant per-channel scale, else None."""
    u = _only_user(q)
    if u is None or u.kwargs or len(u.args) != 2 or not (
            (u.op == "call_function" and u.target in _MULS) or
            (u.op == "call_method" and u.target == "mul")):
        return None
    other = u.args[1] if u.args[0] is q else u.args[0] if u.args[1] is q else None
    if not isinstance(other, torch.fx.Node) or other.op != "get_attr" or other is q:
        return None
    s = _get_attr(gm, other)
    if not isinstance(s, torch.Tensor) or s.dtype != torch.float32 or \
            tuple(s.shape) not in ((C, 1, 1), (1, C, 1, 1)):
        return None
    return u, s.detach().reshape(C)


def _release(t):
    t.data = torch.empty(0, dtype=t.dtype)


def _conv_module(lin, in_scale=None, in_shift=None, out_scale=None):
    """A 1x1 nn.Conv2d computing lin on NCHW, its input first scaled and
    shifted per channel (a LayerNorm's affine) and its output scaled.  The
    weight is torch's own tensor, scaled in place (the Linear is consumed)."""
    w = lin.weight.detach()
    if not w.is_contiguous():
        w = w.contiguous()
    M, C = w.shape
    # the one fold leanconv.onnx's channels-last rewrite uses too (leanconv._fold),
    # on NumPy views of torch's tensors: w is scaled in place
    w, b = fold_linear_affine(w.numpy(), None if lin.bias is None else lin.bias.detach().numpy(),
                              *(None if t is None else t.detach().numpy()
                                for t in (in_scale, in_shift, out_scale)))
    conv = nn.Conv2d(C, M, 1, bias=True, device="meta")   # (no weights of its own drawn)
    conv.weight = nn.Parameter(torch.from_numpy(w).view(M, C, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(torch.from_numpy(b), requires_grad=False)
    _release(lin.weight)    # the conv's view holds the storage now; packing releases it
    if lin.bias is not None:
        _release(lin.bias)
    return conv.eval()


def _rewrite_island(gm, p, links, q, scale):
    graph = gm.graph
    x = _permutation(p)[0]
    mapping = {p: x}
    last_linear = max(i for i, (k, _, _) in enumerate(links) if k == "linear") \
        if any(k == "linear" for k, _, _ in links) else None
    folded_norm = None
    with graph.inserting_before(q):
        cur = x
        for i, (kind, node, data) in enumerate(links):
            nxt_linear = i + 1 < len(links) and links[i + 1][0] == "linear"
            if kind == "norm":
                w, b, eps = data
                affine = (w, b) if not nxt_linear else (None, None)
                norm = ChannelLayerNorm(_meta(node).shape[-1], eps, *affine)
                folded_norm = (w, b) if nxt_linear else None
                name = _fresh(gm, f"lc_norm_{node.name}")
                gm.add_submodule(name, norm)
                cur = graph.call_module(name, (cur,))
            elif kind == "linear":
                in_scale, in_shift = folded_norm if i and links[i - 1][0] == "norm" and \
                    folded_norm is not None else (None, None)
                folded_norm = None
                conv = _conv_module(data, in_scale, in_shift,
                                    scale[1] if scale is not None and i == last_linear else None)
                name = _fresh(gm, f"{node.name}_1x1")
                gm.add_submodule(name, conv)
                cur = graph.call_module(name, (cur,))
            else:
                cur = graph.node_copy(node, lambda n: mapping[n])
            mapping[node] = cur
    end = scale[0] if scale is not None and last_linear is not None else q
    end.replace_all_uses_with(cur)
    dead = ([end] if end is not q else []) + [q] + [n for _, n, _ in reversed(links)] + [p]
    for n in dead:
        graph.erase_node(n)
    return dead


def _fresh(gm, name):
    base, i = name, 0
    while hasattr(gm, name):
        i += 1
        name = f"{base}_{i}"
    return name


def _drop_eval_stochastic_depth(gm):
    dropped = 0
    for n in list(gm.graph.nodes):
        if n.op == "call_function" and getattr(n.target, "__name__", "") == "stochastic_depth" \
                and getattr(n.target, "__module__", "").startswith("torchvision."):
            training = n.args[3] if len(n.args) > 3 else n.kwargs.get("training", True)
            if training is False and isinstance(n.args[0], torch.fx.Node):
                n.replace_all_uses_with(n.args[0])
                gm.graph.erase_node(n)
                dropped += 1
    return dropped


def rewrite(gm):
    """Rewrite gm's channels-last islands in NCHW (in place); the number of
    changes made (the caller propagates shapes again when nonzero)."""
    changed = _drop_eval_stochastic_depth(gm)
    modules = dict(gm.named_modules())
    erased = set()
    for p in list(gm.graph.nodes):
        if p in erased or _permutation(p) is None:
            continue
        found = _island(p, gm, modules)
        if found is None:
            continue
        links, q = found
        C_out = _meta(q).shape[1] if _meta(q) is not None else None
        scale = _layer_scale(q, gm, C_out) if C_out is not None and \
            links[-1][0] == "linear" else None
        erased.update(_rewrite_island(gm, p, links, q, scale))
        changed += 1
    if changed:
        for n in list(gm.graph.nodes):
            if n.op == "get_attr" and not n.users:
                gm.graph.erase_node(n)
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return changed
