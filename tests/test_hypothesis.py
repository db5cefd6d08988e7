"""A property sweep over the whole parameter space, every algorithm that
claims a shape, every ISA, against the float64 reference."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leanconv as lc
from reference import TOLERANCE, conv2d_ref, error_for

settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups == 1
    if depthwise:
        C = draw(st.integers(1, 6))
        groups, Cg, M = C, 1, C * draw(st.integers(1, 3))
    else:
        Cg = draw(st.integers(1, 7))
        C = Cg * groups
        M = groups * draw(st.integers(1, 9))
    kH, kW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if draw(st.booleans()):  # make Winograd shapes common
        kH = kW = 3
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if kH == kW == 3 and draw(st.booleans()):
        sh = sw = dh = dw = 1
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    H = draw(st.integers(max(1, dh * (kH - 1) + 1 - pads[0] - pads[1]), 17))
    W = draw(st.integers(max(1, dw * (kW - 1) + 1 - pads[2] - pads[3]), 17))
    N = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    act = draw(st.sampled_from([None, "relu", "relu6", ("clamp", -0.3, 0.7)]))
    return dict(x=(N, C, H, W), w=(M, Cg, kH, kW), stride=(sh, sw), dilation=(dh, dw),
                padding=pads, groups=groups, bias=bias, activation=act)


@pytest.mark.parametrize("isa_name", lc.available_isas())
@given(p=conv_problems(), seed=st.integers(0, 2**31))
def test_sweep(isa_name, p, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(p["x"]).astype(np.float32)
    w = rng.standard_normal(p["w"]).astype(np.float32)
    b = rng.standard_normal(p["w"][0]).astype(np.float32) if p["bias"] else None
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
    clamp = {None: None, "relu": (0, np.inf), "relu6": (0, 6)}.get(p["activation"]) \
        if not isinstance(p["activation"], tuple) else p["activation"][1:]
    ref, scale = conv2d_ref(x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"], clamp)
    with lc.use_isa(isa_name):
        ran = 0
        for a in lc.algorithms():
            if not lc.supports(a, x.shape, w.shape, **kw):
                continue
            y = lc.conv2d(x, w, b, algorithm=a, activation=p["activation"], **kw)
            assert y.shape == ref.shape
            err = error_for(a, y, ref, scale)
            assert err <= TOLERANCE[a], (a, err)
            ran += 1
        assert ran >= 3  # direct, im2col, patch2vec always claim a valid shape
