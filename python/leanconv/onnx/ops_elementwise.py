"""Element-wise ops in NumPy beyond the ones fused into Conv: unary maths
(Tanh, Erf, Gelu, HardSigmoid, HardSwish, Sqrt, ...), broadcasting binary
ops (Sub, Div, Pow, Mod, comparisons, ...), variadic Max/Min/Mean, Where and Cast.

Floating results keep the input's dtype (NumPy would promote float32 with a
float64 scalar); integer Div truncates toward zero as ONNX asks."""
from __future__ import annotations

import numpy as np

from leanconv.onnx.broadcast_binary import OPS, binary_bind
from leanconv.onnx.node import NP_TYPES, unsupported
from leanconv.onnx.program import Step

# NumPy has no erf.  Abramowitz & Stegun 7.1.26 is 1.5e-7 absolute, too
# coarse relative to tiny inputs, so erf uses the Maclaurin series below 0.5
# and 7.1.26 above, both in float64.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x):
    """erf in float64, |error| < 2e-7 absolute and < 1e-6 relative."""
    z = np.asarray(x, dtype=np.float64)
    a = np.abs(z)
    t = 1.0 / (1.0 + _ERF_P * a)
    poly = t * (_ERF_A[0] + t * (_ERF_A[1] + t * (_ERF_A[2] + t * (_ERF_A[3] + t * _ERF_A[4]))))
    far = 1.0 - poly * np.exp(-a * a)
    # Maclaurin series for |x| < 0.5: 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216)
    z2 = z * z
    near = 1.1283791670955126 * z * (1 - z2 * (1 / 3 - z2 * (1 / 10 - z2 * (1 / 42 - z2 / 216))))
    return np.where(a < 0.5, near, np.copysign(far, z))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _keep(fn):
    """Wrap a float formula so the result has the input's dtype."""
    def run(x):
        return (np.asarray(fn(x)).astype(x.dtype, copy=False),)
    return run


UNARY = {
    "Abs": np.abs, "Neg": np.negative, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt,
    "Reciprocal": np.reciprocal, "Tanh": np.tanh, "Floor": np.floor, "Ceil": np.ceil,
    "Sign": np.sign, "Not": np.logical_not, "Sin": np.sin, "Cos": np.cos,
    "Erf": lambda x: erf(x),
    "Softplus": lambda x: np.logaddexp(0, x),
}


def build_unary(node, ctx):
    node.allow()
    fn = UNARY[node.op_type]
    return Step(node, _keep(lambda x: fn(x)))


def build_hardsigmoid(node, ctx):
    node.allow("alpha", "beta")
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    return Step(node, _keep(lambda x: np.clip(x * alpha + beta, 0, 1)))


def build_hardswish(node, ctx):
    node.allow()
    return Step(node, _keep(lambda x: x * np.clip(x * (1 / 6) + 0.5, 0, 1)))


def build_gelu(node, ctx):
    node.allow("approximate")
    approx = node.attr("approximate", "none")
    if approx == "none":
        return Step(node, _keep(lambda x: 0.5 * x * (1 + erf(x * 0.7071067811865476))))
    if approx == "tanh":
        return Step(node, _keep(lambda x: 0.5 * x * (1 + np.tanh(
            0.7978845608028654 * (x + 0.044715 * x.astype(np.float64) ** 3)))))
    raise ValueError(f"Gelu node {node.name}: approximate must be 'none' or 'tanh', "
                     f"got {approx!r}")


def build_elu(node, ctx):
    node.allow("alpha")
    alpha = float(node.attr("alpha", 1.0))
    return Step(node, _keep(lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))))


def _int_div(a, b):
    """Integer division truncating toward zero (C semantics)."""
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) ^ (b < 0))).astype(q.dtype)


def _div(a, b):
    if a.dtype.kind in "iu":
        return _int_div(a, b)
    return np.divide(a, b)


def _pow(a, b):
    if a.dtype.kind == "f":
        return np.power(a, b.astype(a.dtype) if b.dtype.kind == "f" else b)
    return np.power(a, b.astype(np.int64) if b.dtype.kind in "iu" else b)


BINARY = {
    "Sub": np.subtract, "Div": _div, "Pow": _pow, "Equal": np.equal, "Less": np.less,
    "Greater": np.greater, "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
    "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}
_COMPARISONS = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"}


def build_binary(node, ctx):
    node.allow()
    fn = BINARY[node.op_type]
    keep_type = node.op_type not in _COMPARISONS
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def binary(a, b):
        y = np.asarray(fn(a, b))
        return (y.astype(a.dtype, copy=False) if keep_type else y,)
    # float32 Sub and Div as one C call (broadcast_binary.py)
    bind = (lambda outs, a, b: binary_bind(node.op_type, outs[0], a, b, settings.threads)) \
        if node.op_type in OPS else None
    return Step(node, binary, bind=bind)


def build_mod(node, ctx):
    """Mod: fmod=0 takes the divisor's sign (Python's %), fmod=1 the
    dividend's (C's fmod).  Swin Transformer's exports take the padding to
    whole windows this way."""
    node.allow("fmod")
    fmod = int(node.attr("fmod", 0))
    if fmod not in (0, 1):
        raise ValueError(f"Mod node {node.name}: fmod must be 0 or 1, got {fmod}")
    fn = np.fmod if fmod else np.mod

    def mod(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.asarray(fn(a, b)).astype(a.dtype, copy=False),)
    return Step(node, mod)


VARIADIC = {"Max": np.maximum, "Min": np.minimum}


def build_variadic(node, ctx):
    node.allow()
    if node.op_type == "Mean":
        def mean(*xs):
            return (np.asarray(sum(x.astype(np.float64) for x in xs) / len(xs))
                    .astype(xs[0].dtype),)
        return Step(node, mean)
    fn = VARIADIC[node.op_type]

    def reduce(*xs):
        y = xs[0]
        for x in xs[1:]:
            y = fn(y, x)
        return (np.array(y, copy=True),)
    return Step(node, reduce)


def build_where(node, ctx):
    node.allow()
    return Step(node, lambda c, a, b: (np.where(c, a, b),))


def build_cast(node, ctx):
    node.allow("to", "saturate")
    to = node.attr("to")
    dtype = NP_TYPES.get(to)
    if dtype is None:
        raise unsupported(f"Cast to element type {to} (node {node.name})")
    return Step(node, lambda x: (np.asarray(x).astype(dtype),))


def build_castlike(node, ctx):
    node.allow("saturate")
    return Step(node, lambda x, like: (np.asarray(x).astype(like.dtype),))
