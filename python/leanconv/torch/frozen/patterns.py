"""Finding what freeze fuses in an fx graph: a convolution, the eval-mode
BatchNorm after it, a residual add and the activation after those.

A Chain is one fusible run `conv -> [bn] -> [act]` or
`conv -> [bn] -> add(., r) -> [act]`.  Every link must be the only reader of
the previous node's value (a value read twice must exist, so it cannot be
fused away), and a residual add needs its other operand to have exactly the
conv output's shape and dtype (no broadcasting)."""
from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from leanconv.torch import modules as lct_modules
from leanconv.torch.frozen import activations


@dataclass
class ConvSource:
    """A convolution's weights and geometry, wherever in the model they live."""
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: object
    padding: object
    dilation: object
    groups: int
    owner: object          # the module (or graph root) holding the tensors
    names: tuple           # attribute names of weight (and bias) on owner


@dataclass
class Chain:
    conv: object                                    # fx node
    source: ConvSource
    bn: object = None                               # fx node
    add: object = None                              # fx node
    residual: object = None                         # fx node: add's other operand
    act: object = None                              # fx node
    activation: activations.Activation | None = None
    nodes: list = field(default_factory=list)       # every node the frozen call replaces

    @property
    def last(self):
        return self.nodes[-1]


_CONV_FUNCS = (F.conv2d, torch.conv2d)
_ADDS = (operator.add, operator.iadd, torch.add)
_INPLACE_ADDS = (operator.iadd, "add_")


def _get_attr(root, target):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def conv_source(node, modules, root):
    """ConvSource for an fx node that is a 2-D convolution freeze can take, else None."""
    if node.op == "call_module":
        m = modules[node.target]
        if type(m) not in (nn.Conv2d, lct_modules.Conv2d) or m.padding_mode != "zeros":
            return None
        if len(node.args) != 1 or node.kwargs:
            return None
        return ConvSource(m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, m,
                          ("weight", "bias"))
    if node.op == "call_function" and node.target in _CONV_FUNCS:
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        defaults = dict(bias=None, stride=1, padding=0, dilation=1, groups=1)
        if len(node.args) > len(names) or set(node.kwargs) - set(names):
            return None
        a = {**defaults, **dict(zip(names, node.args)), **node.kwargs}
        w, b = a["weight"], a["bias"]
        if not (isinstance(w, torch.fx.Node) and w.op == "get_attr"):
            return None
        if b is not None and not (isinstance(b, torch.fx.Node) and b.op == "get_attr"):
            return None
        if any(isinstance(a[k], torch.fx.Node) for k in names[3:]):
            return None
        weight = _get_attr(root, w.target)
        bias = None if b is None else _get_attr(root, b.target)
        return ConvSource(weight, bias, a["stride"], a["padding"], a["dilation"], a["groups"],
                          root, (w.target, None if b is None else b.target))
    return None


def _only_user(node, claimed):
    """The one node reading `node`, unless another chain already took it."""
    users = list(node.users)
    return users[0] if len(users) == 1 and users[0] not in claimed else None


def _is_eval_bn(node, modules, channels):
    if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
        return False
    m = modules[node.target]
    return type(m) is nn.BatchNorm2d and not m.training and m.track_running_stats \
        and m.running_mean is not None and m.num_features == channels


def _meta(node):
    tm = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return None if tm is None or not hasattr(tm, "shape") else tm


def _residual_operand(add, value):
    """add's other operand if `add` is value + other (no alpha, no broadcast), else None."""
    if add.op == "call_function" and add.target in _ADDS:
        args, kwargs = add.args, add.kwargs
    elif add.op == "call_method" and add.target in ("add", "add_"):
        args, kwargs = add.args, add.kwargs
    else:
        return None
    if len(args) != 2 or (kwargs and set(kwargs) != {"alpha"}) or kwargs.get("alpha", 1) != 1:
        return None
    a, b = args
    if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node)) or a is b:
        return None
    if add.target in _INPLACE_ADDS and a is not value:
        return None      # the in-place add writes into the other operand, which lives on
    other = b if a is value else a if b is value else None
    mv, mo = _meta(value), _meta(other)
    if other is None or mv is None or mo is None:
        return None
    if tuple(mo.shape) != tuple(mv.shape) or mo.dtype != mv.dtype:
        return None
    return other


_INPLACE_FUNCS = (operator.iadd, operator.isub, operator.imul, operator.itruediv,
                  operator.ifloordiv, operator.imod, operator.ipow, operator.iand,
                  operator.ior, operator.ixor, operator.ilshift, operator.irshift,
                  operator.setitem)


def _inplace_argument(fn, args, kwargs):
    """The value of a Python function's `inplace` parameter in this call."""
    if kwargs.get("inplace", False):
        return True
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):     # a builtin without a signature, or a bad call
        return False
    return bool(bound.get("inplace", False))


def mutates(node, value, modules):
    """Could `node` write into `value` in place?  (Conservative.)"""
    if not node.args or node.args[0] is not value:
        return False
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    if node.op == "call_method":
        return node.target.endswith("_")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return node.target in _INPLACE_FUNCS or name.endswith("_") or \
            _inplace_argument(node.target, node.args, node.kwargs)
    return False


def _input_untouched_until(conv, end, modules):
    """True if nothing between conv and end mutates the conv's input: the
    frozen call runs at `end`'s place and must read the same input."""
    x = conv.args[0]
    n = conv.next
    while n is not end:
        if mutates(n, x, modules):
            return False
        n = n.next
    return True


def find_chain(conv, source, modules, claimed=frozenset()):
    """The longest fusible chain starting at conv node `conv` that takes no
    node in `claimed` (nodes of chains found before)."""
    chain = Chain(conv, source, nodes=[conv])
    out = _meta(conv)
    channels = source.weight.shape[0]
    nxt = _only_user(conv, claimed)
    if nxt is not None and _is_eval_bn(nxt, modules, channels):
        chain.bn = nxt
        chain.nodes.append(nxt)
        nxt = _only_user(nxt, claimed)
    if nxt is not None and out is not None:
        first = nxt.args[0] if nxt.args else None
        act = activations.match(nxt, modules) if first is chain.last else None
        if act is not None:
            chain.act, chain.activation = nxt, act
            chain.nodes.append(nxt)
            return chain
        other = _residual_operand(nxt, chain.last)
        if other is not None and _input_untouched_until(conv, nxt, modules):
            chain.add, chain.residual = nxt, other
            chain.nodes.append(nxt)
            after = _only_user(nxt, claimed)
            act = None if after is None or not after.args or after.args[0] is not nxt \
                else activations.match(after, modules)
            if act is not None:
                chain.act, chain.activation = after, act
                chain.nodes.append(after)
    return chain


def lone_batchnorm(node, modules, claimed=frozenset()):
    """A Chain running an eval-mode BatchNorm no convolution absorbed
    (DenseNet's BN -> ReLU -> conv) as a depthwise 1x1 convolution of unit
    weights, the BatchNorm folded in and the activation after it fused: one
    pass instead of torch's BN and activation.  None for anything else,
    also when a residual add follows (left as it is)."""
    if node in claimed or node.op != "call_module" or len(node.args) != 1 or node.kwargs:
        return None
    tm = _meta(node.args[0])
    if tm is None or len(tm.shape) != 4 or tm.dtype != torch.float32:
        return None
    C = tm.shape[1]
    if not _is_eval_bn(node, modules, C):
        return None
    source = ConvSource(torch.ones(C, 1, 1, 1), None, 1, 0, 1, C, owner=None, names=())
    chain = find_chain(node, source, modules, claimed)
    if chain.bn is not None or chain.add is not None:
        return None
    chain.bn = node      # folded into the unit weights; the chain's "conv" node is the BN itself
    return chain
