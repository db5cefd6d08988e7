"""The fused epilogue y = act(conv + bias + residual): the one parser of
`activation=` (conv2d, Conv2d and the elementwise entry all use it) and the
elementwise entry itself, `activate`, for activations and residual adds that
do not follow a convolution.

Activation forms:
    None                          identity
    "relu", "relu6"               clamp(0, inf), clamp(0, 6)
    ("clamp", lo, hi)             min(max(v, lo), hi)
    "sigmoid", "tanh"
    "silu"                        v * sigmoid(v)
    "gelu"                        v * Phi(v), the exact erf form (torch's default)
    "gelu_tanh"                   torch's approximate="tanh"
    "hardswish"                   v * relu6(v + 3) / 6
    "hardsigmoid"                 relu6(v + 3) / 6 (torch)
    ("hardsigmoid", alpha, beta)  max(0, min(1, alpha * v + beta)) (ONNX)
    "leaky_relu", ("leaky_relu", slope)   v > 0 ? v : slope * v (slope 0.01 by default)
NaN propagates through all of them; +-inf give the limits."""
from __future__ import annotations

import math
import numbers

import numpy as np

# The C layer's enum lc_activation (include/leanconv/conv.h).
CODES = {"none": 0, "clamp": 1, "sigmoid": 2, "tanh": 3, "silu": 4, "gelu": 5,
         "gelu_tanh": 6, "hardswish": 7, "hardsigmoid": 8, "leaky_relu": 9}
CLAMP = CODES["clamp"]

VALID_FORMS = ("None, 'relu', 'relu6', ('clamp', lo, hi), 'sigmoid', 'tanh', 'silu', 'gelu', "
               "'gelu_tanh', 'hardswish', 'hardsigmoid', ('hardsigmoid', alpha, beta), "
               "'leaky_relu' or ('leaky_relu', slope)")

# Parameterless names -> (code, a, b): a, b are (lo, hi) of a clamp, else the
# activation's (alpha, beta).
_NAMED = {
    "relu": (CLAMP, 0.0, math.inf),
    "relu6": (CLAMP, 0.0, 6.0),
    "sigmoid": (CODES["sigmoid"], 0.0, 0.0),
    "tanh": (CODES["tanh"], 0.0, 0.0),
    "silu": (CODES["silu"], 0.0, 0.0),
    "gelu": (CODES["gelu"], 0.0, 0.0),
    "gelu_tanh": (CODES["gelu_tanh"], 0.0, 0.0),
    "hardswish": (CODES["hardswish"], 0.0, 0.0),
    "hardsigmoid": (CODES["hardsigmoid"], 1.0 / 6.0, 0.5),
    "leaky_relu": (CODES["leaky_relu"], 0.01, 0.0),
}
# Parameterised forms: name -> number of parameters.
_PARAMS = {"clamp": 2, "hardsigmoid": 2, "leaky_relu": 1}


def _bad(activation, why=""):
    return ValueError(f"activation {activation!r} is not valid{why}; use {VALID_FORMS}")


def _number(v, activation, finite):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise _bad(activation, ": its parameters must be numbers")
    f = float(v)
    if math.isnan(f) or (finite and math.isinf(f)):
        raise _bad(activation, ": its parameters must be " + ("finite" if finite else "not NaN"))
    return f


def parse(activation):
    """activation -> None (identity) or (code, a, b) for the C epilogue."""
    if activation is None:
        return None
    if isinstance(activation, str):
        if activation in _NAMED:
            return _NAMED[activation]
        raise _bad(activation)
    if isinstance(activation, (tuple, list)) and activation and \
            isinstance(activation[0], str) and activation[0] in _PARAMS:
        name, params = activation[0], tuple(activation[1:])
        if len(params) != _PARAMS[name]:
            raise _bad(activation, f": {name!r} takes {_PARAMS[name]} parameter(s)")
        if name == "clamp":
            lo, hi = (_number(p, activation, finite=False) for p in params)
            if lo > hi:
                raise _bad(activation, ": clamp needs lo <= hi")
            return (CLAMP, lo, hi)
        vals = tuple(_number(p, activation, finite=True) for p in params)
        return (CODES[name],) + vals + (0.0,) * (2 - len(vals))
    raise _bad(activation)


def activate(x, activation, *, residual=None, out=None, threads=None):
    """out = act(x + residual) elementwise, threaded and vectorised with the
    current ISA; one pass.  x (and residual, of x's shape) float32 arrays;
    `out` (x's shape, writeable C-contiguous float32) may be x or residual
    itself, but must not overlap them otherwise.  A non-contiguous x or
    residual is copied first.  Returns out."""
    from . import _core, _isa, _threads
    from ._params import float32_array
    ep = parse(activation)
    x = float32_array(x, "x")
    res = None
    if residual is not None:
        res = float32_array(residual, "residual")
        if res.shape != x.shape:
            raise ValueError(f"residual must have the shape of x {x.shape}, got {res.shape}")
    if out is None:
        out = np.empty(x.shape, np.float32)
    else:
        check_out(out, x.shape, [("x", x), ("residual", res)])
    code, a, b = ep if ep is not None else (0, 0.0, 0.0)
    _core.activate(x.reshape(-1), out.reshape(-1), code, a, b,
                   None if res is None else res.reshape(-1), _threads.resolve(threads),
                   _isa.isa_id())
    return out


def check_out(out, shape, others):
    """out must be a writeable C-contiguous float32 array of `shape` that is
    either one of `others` (name, array) that may alias it exactly or
    overlaps none of them."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    problem = _out_problem(out, tuple(shape))
    if problem is not None:
        raise ValueError(f"out {problem}; out is written in place, so it must be a writeable, "
                         f"aligned, C-contiguous, native float32 array of shape {tuple(shape)}")
    for name, a in others:
        if a is not None and np.shares_memory(out, a) and not same_buffer(out, a):
            raise ValueError(f"out overlaps {name} without being the same array; leanconv "
                             f"accepts only out that is exactly {name} or disjoint from it")


def _out_problem(out, shape):
    """What makes `out` unusable as the output of this call, or None."""
    from ._params import swapped_float32  # here: _params imports this module
    if swapped_float32(out.dtype):
        return f"has the other byte order ({out.dtype.str})"
    if out.dtype != np.float32:
        return f"has dtype {out.dtype}"
    if out.shape != shape:
        return f"has shape {out.shape}"
    if not out.flags.writeable:
        return "is read-only"
    if not out.flags.c_contiguous:
        return "is not C-contiguous"
    if not out.flags.aligned:
        return "is not aligned to 4 bytes"
    return None


def same_buffer(a, b):
    """Do a and b view exactly the same memory, element for element?"""
    # the stride of a dimension of size 1 is never stepped: two C-contiguous
    # views of one buffer can differ there (a reshape that adds a 1, MaxViT's
    # (1, 1, 49, 512) tokens) and still alias element for element
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape
            and all(n == 1 or sa == sb for n, sa, sb in zip(a.shape, a.strides, b.strides)))
