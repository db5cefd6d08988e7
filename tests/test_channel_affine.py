"""kernels/channel_affine.c (leanconv._core.channel_affine) against a float64
reference, and leanconv.onnx's lone BatchNormalization -> Relu (with any
per-channel Mul and Add between them) as that one pass (channel_affine.py):
fused where it may be, refused where the norm's output is read elsewhere, a
Conv absorbs it, no Relu follows or its parameters are not constants; every
model matches onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core, _isa


@pytest.mark.parametrize("n, C, hw", [(1, 5, 1), (2, 3, 7), (1, 4, 4099), (3, 64, 16)])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_channel_affine_matches_the_float64_reference(n, C, hw, relu, threads):
    g = np.random.default_rng(hw)
    x = g.standard_normal((n, C, hw)).astype(np.float32)
    x[0, 0, 0] = np.nan
    s, t = g.standard_normal(C).astype(np.float32), g.standard_normal(C).astype(np.float32)
    want = x.astype(np.float64) * s[:, None] + t[:, None]
    if relu:
        want = np.where(want < 0, 0.0, want)
    y = np.full_like(x, 7.0)
    _core.channel_affine(x.reshape(-1), y.reshape(-1), n * C, hw, s, t, relu, threads)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)   # NaN where x is NaN
    _core.channel_affine(x.reshape(-1), x.reshape(-1), n * C, hw, s, t, relu, threads)
    np.testing.assert_array_equal(x, y)   # in place: the same values


@pytest.mark.parametrize("n, C, hw", [(1, 3, 37), (2, 4, 16), (1, 64, 1024)])
@pytest.mark.parametrize("relu", [True, False])
def test_every_isa_and_thread_count_gives_the_same_bits(isa, n, C, hw, relu):
    """The ISA's plane primitive (a fused multiply-add) within one rounding of
    the product of the portable loop, and the same bits at any thread count."""
    g = np.random.default_rng(C)
    x = g.standard_normal(n * C * hw).astype(np.float32)
    x[:3] = [np.nan, -0.0, 0.0]
    s, t = g.standard_normal(C).astype(np.float32), g.standard_normal(C).astype(np.float32)
    want = (x.reshape(n, C, hw).astype(np.float64) * s[:, None] + t[:, None]).reshape(-1)
    if relu:
        want = np.where(want < 0, 0.0, want)
    outs = []
    for threads in (1, 2, 3):
        y = np.full_like(x, 7.0)
        _core.channel_affine(x, y, n * C, hw, s, t, relu, threads, _isa.isa_id(isa))
        outs.append(y.tobytes())
    assert outs[1] == outs[0] and outs[2] == outs[0]
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


# Planes of 64 K floats and more are split over 2 threads (the pass is
# bound by each core's own cache bandwidth), 32 K stay on one.
@pytest.mark.skipif(_core.parallel_backend() != "pool", reason="no pthread pool in this build")
@pytest.mark.parametrize("C, hw, team", [(64, 1024, 2), (1000, 64, 2), (128, 256, 1)])
def test_large_maps_split_over_the_threads(C, hw, team):
    x = np.random.default_rng(1).standard_normal(C * hw).astype(np.float32)
    s, t = np.ones(C, np.float32), np.zeros(C, np.float32)
    _core.pool_trace(10)
    try:
        _core.channel_affine(x, np.empty_like(x), C, hw, s, t, True, 2, _isa.isa_id())
        recs = _core.pool_trace()
    finally:
        _core.pool_trace(0)
    assert [r["team"] for r in recs] == [team]


def test_bound_affine_checks_its_buffers_and_threads():
    x, s = np.zeros(12, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.BoundAffine(x, np.zeros(11, np.float32), 3, 4, s, s, True, 1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _core.BoundAffine(x, np.zeros(12, np.float32), 3, 4, s, s, True, 0)
    with pytest.raises(ValueError, match="not available"):
        _core.BoundAffine(x, np.zeros(12, np.float32), 3, 4, s, s, True, 1, 99)


def test_channel_affine_refuses_a_bad_geometry():
    x, s = np.zeros(12, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.channel_affine(x, np.zeros(11, np.float32), 3, 4, s, s, True, 1)
    with pytest.raises(ValueError, match="one value per channel"):
        _core.channel_affine(x, np.zeros(12, np.float32), 3, 4, s, s[:2], True, 1)
    with pytest.raises(ValueError, match="whole images"):
        _core.channel_affine(x, np.zeros(12, np.float32), 3, 4, s[:2].copy(),
                             s[:2].copy(), True, 1)




def norm_model(relu=True, extra_reader=False, after_conv=False, params_as_input=False,
               chain=()):
    """[Conv ->] BN -> [Mul | Add of a constant of the given shape, ...] ->
    [Relu ->] 1x1 Conv (DenseNet's pre-activation; the onnx zoo's has a Mul and
    an Add of per-channel constants between its BN and its Relu)."""
    from onnx import helper
    from test_onnx_adapter import make_model
    C, K = 6, 4
    g = np.random.default_rng(2)
    inits = [("b", g.random(C).astype(np.float32)), ("m", g.random(C).astype(np.float32)),
             ("v", (0.5 + g.random(C)).astype(np.float32)),
             ("w", g.standard_normal((K, C, 1, 1)).astype(np.float32)),
             ("w0", g.standard_normal((C, C, 3, 3)).astype(np.float32))]
    inputs = [("x", (1, C, 7, 9))]
    if params_as_input:
        inputs.append(("s", (C,)))
    else:
        inits.append(("s", (0.5 + g.random(C)).astype(np.float32)))
    nodes = []
    src = "x"
    if after_conv:
        nodes.append(helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]))
        src = "c0"
    nodes.append(helper.make_node("BatchNormalization", [src, "s", "b", "m", "v"], ["n"]))
    act = "n"
    for k, (op, shape) in enumerate(chain):
        inits.append((f"k{k}", (0.5 + g.random(shape)).astype(np.float32)))
        nodes.append(helper.make_node(op, [f"k{k}", act] if k % 2 else [act, f"k{k}"], [f"a{k}"]))
        act = f"a{k}"
    if relu:
        nodes.append(helper.make_node("Relu", [act], ["r"]))
        act = "r"
    nodes.append(helper.make_node("Conv", [act, "w"], ["y"]))
    outputs = [("y", None)]
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", ["n"], ["z"]))
        outputs.append(("z", None))
    return make_model(nodes, inputs, outputs, inits)


@pytest.mark.parametrize("kwargs, fused", [
    ({}, True),
    (dict(extra_reader=True), False),     # the norm's output is read elsewhere
    (dict(after_conv=True), False),       # a Conv absorbs the norm
    (dict(relu=False), False),            # no Relu: a depthwise 1x1 Conv (rewrite.py)
    (dict(params_as_input=True), False),  # its scale is not a constant
    # per-channel Mul and Add constants between the norm and its Relu fold into the pass
    (dict(chain=[("Mul", (6, 1, 1)), ("Add", (1, 6, 1, 1)), ("Mul", ())]), True),
    (dict(chain=[("Mul", (6, 1, 1)), ("Add", (1, 1, 9))]), False),   # varies along width
    (dict(chain=[("Add", (6, 1, 1))], relu=False), False),
])
def test_lone_batchnorm_relu_is_one_affine_step_where_it_may_be(kwargs, fused):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import leanconv.onnx as lco
    from test_onnx_adapter import assert_matches_ort
    model = norm_model(**kwargs)
    rep = lco.prepare(model)
    labels = [s.label() for s in rep.program.steps]
    assert ("ChannelAffineRelu+Relu" in labels) == fused, labels
    # the fused pass runs as a bound C call among the Convs'
    from test_bound_pool import bound_types
    assert ("BoundAffine" in bound_types(rep.program.schedule)) == fused
    feeds = {"x": np.random.default_rng(3).standard_normal((1, 6, 7, 9)).astype(np.float32)}
    if kwargs.get("params_as_input"):
        feeds["s"] = (0.5 + np.random.default_rng(4).random(6)).astype(np.float32)
    assert_matches_ort(model, feeds)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_norm_no_rewrite_took_runs_as_a_bound_affine_pass(threads):
    """A BatchNormalization left as its own step (here: prepare without the
    rewrites; in MaxViT one whose input's rank prepare could not know) with
    constant parameters is one bound C pass of the per-channel affine map,
    folded as a Conv's norm is."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import leanconv.onnx as lco
    from test_bound_pool import bound_types
    from test_onnx_adapter import assert_matches_ort
    model = norm_model(relu=False)
    feeds = {"x": np.random.default_rng(5).standard_normal((1, 6, 7, 9)).astype(np.float32)}
    assert_matches_ort(model, feeds, fuse=False, threads=threads)
    rep = lco.prepare(model, fuse=False, threads=threads)
    rep.run(feeds)
    assert "BoundAffine" in bound_types(rep.program.schedule)
    # parameters fed at run time are not folded once: NumPy's step, and right
    model = norm_model(relu=False, params_as_input=True)
    feeds["s"] = (0.5 + np.random.default_rng(4).random(6)).astype(np.float32)
    assert_matches_ort(model, feeds, fuse=False, threads=threads)
    rep = lco.prepare(model, fuse=False, threads=threads)
    rep.run(feeds)
    assert "BoundAffine" not in bound_types(rep.program.schedule)
