"""The fused epilogue y = act(conv + bias + residual): every activation on
every ISA against a float64 reference (a dense sweep with the extremes),
every algorithm with and without a residual and with out=residual, the
elementwise entry, determinism, workspace and errors."""
import numpy as np
import pytest

import leanconv as lc
from leanconv import _core
from leanconv._epilogue import activate
from reference import TOLERANCE, activation_ref, conv2d_ref, error_for

ACTIVATIONS = [None, "relu", "relu6", ("clamp", -0.5, 0.75), "sigmoid", "tanh", "silu", "gelu",
               "gelu_tanh", "hardswish", "hardsigmoid", ("hardsigmoid", 0.2, 0.5),
               ("leaky_relu", 0.1)]
IDS = [a if isinstance(a, str) or a is None else "-".join(map(str, a)) for a in ACTIVATIONS]
IDS = ["none" if a is None else a for a in IDS]

# Accuracy promised for the activations (docs/epilogue.md): a few float32
# ulps of the exact value, or 2e-7 absolute where the value is near zero.
ULPS, ABS = 4, 2e-7


def sweep():
    """A dense sweep of [-20, 20], a log sweep out to the float32 limits, the
    special values and the points where the formulas change branch."""
    f = np.finfo(np.float32)
    dense = np.linspace(-20, 20, 40001)
    logs = np.logspace(-45, 38.5, 2000)
    special = [0.0, -0.0, f.tiny, -f.tiny, 1e-45, -1e-45, f.max, -f.max, np.inf, -np.inf,
               np.nan, 3.0, -3.0, 2.9999998, -2.9999998, 88.0, -88.0, 89.0, -89.0, 104.0,
               -104.0, 105.0, -105.0, 9.0, -9.0, 1e10, -1e10,
               # GELU's Phi fit ends at |v| = 5.75 (kernels/activation_coeffs.h)
               5.75, -5.75, 5.7499995, -5.7499995, 5.7500005, -5.7500005]
    v = np.concatenate([dense, logs, -logs, special])
    return v.astype(np.float32)


def assert_close_to_ref(y, v, activation):
    ref = activation_ref(v.astype(np.float64), activation)
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(y), nan), v[np.isnan(y) != nan][:5]
    inf = np.isinf(ref)
    assert np.array_equal(y[inf], ref[inf]), v[inf][y[inf] != ref[inf]][:5]
    fin = ~nan & ~inf
    ref32 = np.abs(ref[fin]).astype(np.float32)
    with np.errstate(over="ignore"):  # the spacing at the largest float is inf
        tol = ULPS * np.spacing(ref32).astype(np.float64) + ABS
    err = np.abs(y[fin].astype(np.float64) - ref[fin])
    bad = err > tol
    assert not bad.any(), list(zip(v[fin][bad][:5], y[fin][bad][:5], ref[fin][bad][:5]))


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=IDS)
def test_activation_sweep(isa, activation):
    v = sweep()
    y = activate(v, activation)
    assert y.dtype == np.float32 and y.shape == v.shape
    assert_close_to_ref(y, v, activation)


@pytest.mark.parametrize("activation", ["gelu", "relu", None], ids=["gelu", "relu", "none"])
def test_activate_residual_and_aliasing(isa, activation, rng):
    x = rng.standard_normal((3, 5, 7, 11)).astype(np.float32) * 4
    r = rng.standard_normal(x.shape).astype(np.float32) * 4
    want = activation_ref(x.astype(np.float64) + r.astype(np.float64), activation)
    y = activate(x, activation, residual=r)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    # out may be x or the residual itself: same bits as a separate output
    for alias in ("x", "residual"):
        xa, ra = x.copy(), r.copy()
        out = xa if alias == "x" else ra
        got = activate(xa, activation, residual=ra, out=out)
        assert got is out
        np.testing.assert_array_equal(got, y)


def test_out_may_be_x_viewed_with_other_strides_on_its_size_1_dims(rng):
    """Two C-contiguous views of one buffer alias element for element even
    where a size-1 dimension's stride differs (an arena buffer reshaped to
    (1, 1, 49, 512) by one step and viewed as its input by the next, as in
    MaxViT); a view shifted by one element is refused."""
    buf = rng.standard_normal(49 * 512).astype(np.float32)
    x = np.lib.stride_tricks.as_strided(buf, (1, 1, 49, 512), (100352, 2048, 2048, 4))
    out = buf.reshape(1, 1, 49, 512)
    assert x.strides != out.strides
    r = rng.standard_normal(out.shape).astype(np.float32)
    want = buf.reshape(out.shape) + r
    got = activate(x, None, residual=r, out=out)
    np.testing.assert_array_equal(got, want)
    big = rng.standard_normal(49 * 512 + 1).astype(np.float32)
    with pytest.raises(ValueError, match="out overlaps x"):
        activate(big[1:].reshape(out.shape), None, residual=r, out=big[:-1].reshape(out.shape))


def test_activate_threads_and_noncontiguous(isa, rng):
    x = rng.standard_normal(300001).astype(np.float32) * 5
    ys = [activate(x, "silu", threads=t) for t in (1, 2, 3)]
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])
    xs = rng.standard_normal((64, 40)).astype(np.float32)
    r = rng.standard_normal((40, 64)).astype(np.float32).T  # not contiguous: copied
    np.testing.assert_array_equal(activate(xs[:, ::2], "tanh", residual=r[:, ::2]),
                                  activate(np.ascontiguousarray(xs[:, ::2]), "tanh",
                                           residual=np.ascontiguousarray(r[:, ::2])))


# ---- convolutions: every algorithm, with and without a residual ----

def case_for(algorithm):
    """(x shape, w shape, conv kwargs) the algorithm supports, with borders,
    a partial last panel / tile and two images."""
    if algorithm == "depthwise":
        return (2, 6, 9, 13), (6, 1, 3, 3), dict(padding=1, groups=6)
    if algorithm.endswith("_lean"):   # output channels in whole panels of the channel lanes
        return (2, 5, 9, 13), (16, 5, 3, 3), dict(padding=1)
    return (2, 5, 9, 13), (7, 5, 3, 3), dict(padding=1)


EXTRA_CASES = [  # (algorithm, x, w, kwargs): the other code paths
    ("depthwise", (1, 4, 8, 10), (8, 1, 5, 5), dict(padding=2, groups=4)),  # band path, multiplier 2
    ("depthwise", (1, 3, 40, 300), (3, 1, 7, 7), dict(padding=3, groups=3)),  # several bands
    ("depthwise", (1, 2, 9, 20), (2, 1, 5, 5), dict(padding=2, stride=2, groups=2)),  # phases
    ("depthwise", (1, 2, 3, 2500), (2, 1, 5, 5), dict(padding=2, groups=2)),  # in place: row path
    ("depthwise", (1, 3, 7, 9), (3, 1, 3, 3), dict(padding=1, stride=2, groups=3)),
    ("depthwise", (2, 8, 9, 21), (12, 4, 3, 3), dict(padding=1, groups=2)),  # grouped
    ("depthwise", (1, 12, 11, 19), (6, 4, 3, 3), dict(padding=1, stride=2, groups=3)),
    ("depthwise", (1, 4, 3, 2500), (4, 2, 3, 3), dict(padding=1, groups=2)),  # in place: direct
    ("im2col", (1, 16, 6, 6), (24, 16, 1, 1), {}),  # pointwise: B is the input
    ("patch2vec", (1, 16, 6, 6), (24, 16, 1, 1), {}),
    ("im2col", (1, 300, 5, 5), (20, 300, 1, 1), {}),  # K > kc: several K blocks
    ("patch2vec", (1, 300, 5, 5), (20, 300, 1, 1), {}),
    ("winograd_f4", (1, 20, 14, 14), (40, 20, 3, 3), dict(padding=1)),
    ("im2col", (1, 48, 1, 1), (75, 48, 1, 1), {}),  # a 1x1 output: one contiguous column
    ("im2col", (1, 8, 3, 3), (37, 8, 3, 3), {}),
]


def make(xs, ws, rng):
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) * (2.0 / np.sqrt(np.prod(ws[1:])))).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    return x, w, b


MODES = ("none", "residual", "inplace")


def check_conv(algorithm, x, w, b, kw, activations, rng, modes=MODES, threads=1):
    """Each activation in each mode -- no residual, a separate one, and
    out=residual -- against the float64 reference."""
    plan0 = lc.Conv2d(w, b, algorithm=algorithm, **kw)
    spec = plan0.spec
    conv, scale0 = conv2d_ref(x, w, b, spec.stride, spec.pads, spec.dilation, spec.groups)
    res = rng.standard_normal(conv.shape).astype(np.float32)
    for activation in activations:
        plan = lc.Conv2d(w, b, algorithm=algorithm, activation=activation, **kw)
        for mode in modes:
            pre, scale = conv, scale0
            if mode != "none":
                pre, scale = conv + res, scale0 + np.abs(res)
            out = res.copy() if mode == "inplace" else None
            y = plan(x, out=out, residual=out if mode == "inplace" else
                     (res if mode == "residual" else None), threads=threads)
            if mode == "inplace":
                assert y is out
            # an activation's slope is at most 1.5 (hardswish at 3): errors
            # grow by that much
            err = error_for(plan.algorithm, y, activation_ref(pre, activation), scale)
            assert err <= 1.5 * TOLERANCE[plan.algorithm] + 1e-7, (activation, mode, err)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("algorithm", lc.algorithms())
def test_conv_epilogue(isa, algorithm, activation, rng):
    xs, ws, kw = case_for(algorithm)
    x, w, b = make(xs, ws, rng)
    check_conv(algorithm, x, w, b, kw, [activation], rng)


@pytest.mark.parametrize("case", EXTRA_CASES, ids=[f"{c[0]}-{c[2]}" for c in EXTRA_CASES])
def test_conv_epilogue_paths(isa, case, rng):
    algorithm, xs, ws, kw = case
    x, w, b = make(xs, ws, rng)
    check_conv(algorithm, x, w, b, kw, ("relu", "gelu", None), rng)


def test_depthwise_inplace_wide_rows(isa, rng):
    """Rows wider than the stack staging buffer take the heap one."""
    x, w, b = make((1, 2, 3, 2500), (2, 1, 3, 3), rng)
    check_conv("depthwise", x, w, b, dict(padding=1, groups=2), ["silu"], rng, modes=["inplace"])


def test_conv2d_functional_residual(rng):
    x, w, b = make((1, 5, 9, 13), (7, 5, 3, 3), rng)
    r = rng.standard_normal((1, 7, 9, 13)).astype(np.float32)
    plan = lc.Conv2d(w, b, padding=1, activation="silu")
    # the algorithm of this input's shape (plan.algorithm before a call is a 28 x 28 input's)
    np.testing.assert_array_equal(lc.conv2d(x, w, b, padding=1, activation="silu", residual=r,
                                            algorithm=plan.algorithm_for(x.shape)),
                                  plan(x, residual=r))
    rc = r.copy()
    out = lc.conv2d(x, w, b, padding=1, activation="silu", residual=rc, out=rc,
                    algorithm=plan.algorithm)
    assert out is rc
    np.testing.assert_allclose(out, plan(x, residual=r), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algorithm", lc.algorithms())
def test_threads_bitwise_and_workspace(isa, algorithm, rng):
    xs, ws, kw = case_for(algorithm)
    x, w, b = make(xs, ws, rng)
    plan = lc.Conv2d(w, b, algorithm=algorithm, activation="gelu", **kw)
    r = rng.standard_normal(plan.output_shape(x.shape)).astype(np.float32)
    # (out=residual may take another kernel path than a separate output --
    # depthwise stages rows instead of running its plane kernel -- so the two
    # modes are compared each with itself)
    for inplace in (False, True):
        first = None
        for threads in (1, 2, 3, 5):
            out = r.copy() if inplace else None
            y = plan(x, out=out, residual=out if inplace else r, threads=threads)
            assert _core.last_workspace_bytes() == plan.workspace_bytes(x.shape, threads=threads)
            if first is None:
                first = y.copy()
            np.testing.assert_array_equal(y, first)


@pytest.mark.parametrize("algorithm", lc.algorithms())
def test_bound_call_matches_the_plan_call(isa, algorithm, rng):
    """plan.bind: the call fixed once (an executor's step) computes what the
    call computes, in place on the residual too, in a shared workspace."""
    xs, ws, kw = case_for(algorithm)
    x, w, b = make(xs, ws, rng)
    plan = lc.Conv2d(w, b, algorithm=algorithm, activation="gelu", **kw)
    r = rng.standard_normal(plan.output_shape(x.shape)).astype(np.float32)
    for inplace in (False, True):
        out = r.copy() if inplace else np.empty_like(r)
        rc = r.copy()
        want = plan(x, out=rc if inplace else None, residual=rc, threads=2)
        call = plan.bind(x, out, residual=out if inplace else r, threads=2)
        assert call.workspace_bytes == plan.workspace_bytes(x.shape, threads=2)
        workspace = np.empty(call.workspace_bytes, np.uint8)
        _core.run_bound((call,), workspace)
        np.testing.assert_array_equal(out, want)
        if call.workspace_bytes:
            with pytest.raises(ValueError, match="workspace"):   # too small: refused, not overrun
                _core.run_bound((call,), workspace[:-1])


def test_bind_refuses_what_it_cannot_hold(rng):
    plan = lc.Conv2d(W, padding=1)
    y = np.zeros((1, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match="out is required"):
        plan.bind(X, None)
    wide = np.zeros((1, 2, 5, 10), np.float32)
    with pytest.raises(ValueError, match="x must be a C-contiguous native float32"):
        plan.bind(wide[..., ::2], y)
    with pytest.raises(ValueError, match="out must be a C-contiguous"):
        plan.bind(X, y.astype(np.float64))
    with pytest.raises(ValueError, match="residual must be a C-contiguous"):
        plan.bind(X, y, residual=y.astype(">f4"))
    with pytest.raises(ValueError, match="out overlaps the input x"):
        buf = np.zeros(200, np.float32)
        plan.bind(buf[:50].reshape(1, 2, 5, 5), buf[40:115].reshape(1, 3, 5, 5))


def test_residual_noncontiguous_is_copied(rng):
    x, w, b = make((1, 5, 9, 13), (7, 5, 3, 3), rng)
    plan = lc.Conv2d(w, b, padding=1, activation="relu")
    big = rng.standard_normal((1, 7, 9, 26)).astype(np.float32)
    np.testing.assert_array_equal(plan(x, residual=big[..., ::2]),
                                  plan(x, residual=np.ascontiguousarray(big[..., ::2])))


# ---- errors ----

X = np.zeros((1, 2, 5, 5), np.float32)
W = np.zeros((3, 2, 3, 3), np.float32)


@pytest.mark.parametrize("activation,fragment", [
    ("swish", "not valid"), ("Relu", "not valid"), (("clamp", 1), "takes 2"),
    (("leaky_relu",), "takes 1"), (("leaky_relu", "a"), "numbers"),
    (("leaky_relu", np.nan), "finite"), (("hardsigmoid", 1.0, np.inf), "finite"),
    (("gelu", 1), "not valid"), (3, "not valid"), (("clamp", 2, 1), "lo <= hi"),
    ((), "not valid"),
])
def test_bad_activation(activation, fragment):
    for call in (lambda: lc.conv2d(X, W, activation=activation),
                 lambda: lc.Conv2d(W, activation=activation),
                 lambda: activate(X, activation)):
        with pytest.raises(ValueError, match="activation") as info:
            call()
        assert fragment in str(info.value) and "'gelu_tanh'" in str(info.value)


def test_bad_residual():
    plan = lc.Conv2d(W, padding=1)
    y_shape = (1, 3, 5, 5)
    with pytest.raises(ValueError, match=r"residual must have the output's shape \(1, 3, 5, 5\)"):
        plan(X, residual=np.zeros((1, 3, 5, 4), np.float32))
    with pytest.raises(TypeError, match="residual has dtype float64"):
        plan(X, residual=np.zeros(y_shape))
    with pytest.raises(TypeError, match="residual must be a numpy array"):
        plan(X, residual=[[0.0]])
    r = np.zeros((1, 3, 5, 6), np.float32)
    with pytest.raises(ValueError, match="out overlaps residual"):
        plan(X, out=r[..., :5].copy(), residual=r[..., :5]) is None or \
            plan(X, out=np.zeros(y_shape, np.float32), residual=None)
        buf = np.zeros(2 * 75, np.float32)
        plan(X, out=buf[:75].reshape(y_shape), residual=buf[1:76].reshape(y_shape))


def test_out_overlaps_reported():
    plan = lc.Conv2d(W, padding=1)
    buf = np.zeros(200, np.float32)
    y_shape = (1, 3, 5, 5)
    with pytest.raises(ValueError, match="out overlaps residual without being the same array"):
        plan(X, out=buf[:75].reshape(y_shape), residual=buf[1:76].reshape(y_shape))
    xbuf = np.zeros(200, np.float32)
    x = xbuf[:50].reshape(1, 2, 5, 5)
    with pytest.raises(ValueError, match="out overlaps the input x"):
        plan(x, out=xbuf[50 - 10:115].reshape(y_shape))
    with pytest.raises(ValueError, match="out overlaps x"):
        activate(xbuf[:75], "relu", out=xbuf[1:76])
    with pytest.raises(ValueError, match="residual must have the shape of x"):
        activate(X, "relu", residual=np.zeros(3, np.float32))


def test_core_activate_entry(rng):
    """The flat entry the executors call: codes, parameters, best ISA by default."""
    from leanconv._epilogue import CODES
    x = rng.standard_normal(1000).astype(np.float32)
    r = rng.standard_normal(1000).astype(np.float32)
    out = np.empty_like(x)
    with lc.use_isa(lc.available_isas()[-1]):
        _core.activate(x, out, CODES["leaky_relu"], 0.2, 0.0, r, 2)
        np.testing.assert_array_equal(out, activate(x, ("leaky_relu", 0.2), residual=r))
        _core.activate(x, out, CODES["clamp"], -0.5, 0.5, None, 1)
        np.testing.assert_array_equal(out, np.clip(x, -0.5, 0.5))
    with pytest.raises(ValueError, match="unknown activation code 42"):
        _core.activate(x, out, 42, 0.0, 0.0, None, 1)
    with pytest.raises(ValueError, match="same length"):
        _core.activate(x, out[:10], CODES["clamp"], 0.0, 1.0, None, 1)
