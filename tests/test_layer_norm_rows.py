"""LayerNormalization over contiguous rows in C (kernels/instance_norm.c's
lc_layer_norm_rows, leanconv.onnx's LayerNormalization step): against a
float64 reference, the same bits at any thread count, and NumPy where the C
kernel does not apply (a broadcast scale, the Mean / InvStdDev outputs read)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import leanconv.onnx as lco  # noqa: E402
from leanconv import _core  # noqa: E402

F32 = TensorProto.FLOAT
TOL = 2e-6   # max |ours - ref| / max |ref|: a float32 map of float64 statistics


def _reference(x, scale, bias, axis, eps):
    x = x.astype(np.float64)
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * inv * scale
    return y + (0.0 if bias is None else bias), mean, inv


def _model(x_shape, scale, bias, axis, eps, outputs=("y",)):
    inputs = ["x", "scale"] + (["bias"] if bias is not None else [])
    node = helper.make_node("LayerNormalization", inputs, list(outputs), axis=axis, epsilon=eps)
    inits = [numpy_helper.from_array(scale, "scale")]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "bias"))
    graph = helper.make_graph([node], "ln", [helper.make_tensor_value_info("x", F32, x_shape)],
                              [helper.make_tensor_value_info(o, F32, None) for o in outputs],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


CASES = [   # (x shape, axis, with bias)
    ((1, 3136, 96), -1, True),      # Swin-T's first stage
    ((2, 49, 768), -1, True),
    ((3, 7, 33), -1, False),        # a width off the vector lanes, no bias
    ((2, 5, 7, 12), -2, True),      # two normalised axes: rows of 84
    ((4, 1000), 1, True),
]


@pytest.mark.parametrize("shape,axis,with_bias", CASES)
def test_layer_norm_rows_match_float64_and_do_not_depend_on_threads(shape, axis, with_bias,
                                                                    monkeypatch):
    calls = []
    c_call = _core.BoundLayerNormRows   # the step binds its C call
    monkeypatch.setattr(_core, "BoundLayerNormRows", lambda *a: calls.append(a) or c_call(*a))
    rng = np.random.default_rng(0)
    tail = shape[axis % len(shape):]
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    scale = rng.standard_normal(tail).astype(np.float32)
    bias = rng.standard_normal(tail).astype(np.float32) if with_bias else None
    ref = _reference(x, scale, bias, axis, 1e-5)[0]
    outs = [lco.prepare(_model(list(shape), scale, bias, axis, 1e-5), threads=t).run([x])[0]
            for t in (1, 2)]
    assert np.max(np.abs(outs[0] - ref)) / np.max(np.abs(ref)) < TOL
    assert np.array_equal(outs[0], outs[1])
    assert calls, "the C kernel did not run"


def test_a_large_offset_over_a_small_spread_keeps_its_digits():
    rng = np.random.default_rng(1)
    x = (1000 + 0.01 * rng.standard_normal((64, 96))).astype(np.float32)
    scale = np.ones(96, np.float32)
    y = lco.prepare(_model([64, 96], scale, None, -1, 1e-9)).run([x])[0]
    ref = _reference(x, scale, None, -1, 1e-9)[0]
    assert np.max(np.abs(y - ref)) < 1e-3


def test_a_broadcast_scale_and_the_statistics_outputs_take_numpy_and_stay_right():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 10)).astype(np.float32)
    scale = rng.standard_normal((1, 10)).astype(np.float32)      # broadcast over the 6 rows
    bias = rng.standard_normal((6, 10)).astype(np.float32)
    y = lco.prepare(_model([2, 6, 10], scale, bias, -2, 1e-5)).run([x])[0]
    ref = _reference(x, scale, bias, -2, 1e-5)[0]
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < TOL
    scale = rng.standard_normal(10).astype(np.float32)
    y, mean, inv = lco.prepare(_model([2, 6, 10], scale, None, -1, 1e-5,
                                      outputs=("y", "mean", "inv"))).run([x])
    ref, ref_mean, ref_inv = _reference(x, scale, None, -1, 1e-5)
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < TOL
    assert np.allclose(mean, ref_mean, rtol=1e-6, atol=1e-7)
    assert np.allclose(inv, ref_inv, rtol=1e-6)


def test_layer_norm_rows_refuses_a_bad_geometry():
    x = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.layer_norm_rows(x, np.zeros(12, np.float32), 5, 3, 1e-5, np.ones(3, np.float32),
                              None, 1)
    with pytest.raises(ValueError, match="scale has 4 values, rows have 3"):
        _core.layer_norm_rows(x, np.zeros(12, np.float32), 4, 3, 1e-5, np.ones(4, np.float32),
                              None, 1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _core.layer_norm_rows(x, np.zeros(12, np.float32), 4, 3, 1e-5, np.ones(3, np.float32),
                              None, 0)
    with pytest.raises(ValueError, match="bias"):
        _core.layer_norm_rows(x, np.zeros(12, np.float32), 4, 3, 1e-5, np.ones(3, np.float32),
                              np.ones(2, np.float32), 1)



@pytest.mark.parametrize("width", [1, 7, 8, 9, 96, 768, 1001])
def test_every_isa_row_entry_computes_the_portable_bits(width):
    """kernels/layer_norm_row_template.h compiled for each ISA (contraction
    off) gives the portable loop's bits, rows of any width, an offset mean
    and a small spread included (the mean's float split keeps its digits)."""
    from conftest import ALL_ISAS
    from leanconv import _isa
    rng = np.random.default_rng(width)
    rows = 5
    x = (rng.standard_normal((rows, width)) * 0.01 + 1000).astype(np.float32)
    x[1] = rng.standard_normal(width).astype(np.float32) * 50
    scale = rng.standard_normal(width).astype(np.float32)
    bias = rng.standard_normal(width).astype(np.float32)
    outs = {}
    for isa in ALL_ISAS:
        for b in (bias, None):
            y = np.full(rows * width, np.nan, np.float32)
            _core.layer_norm_rows(x.reshape(-1), y, rows, width, 1e-5, scale, b, 2,
                                  _isa.isa_id(isa))
            outs[isa, b is None] = y
    for (isa, no_bias), y in outs.items():
        np.testing.assert_array_equal(y, outs["scalar", no_bias], err_msg=isa)
    if width > 1:
        want, _, _ = _reference(x, scale, bias, -1, 1e-5)
        np.testing.assert_allclose(outs["scalar", False].reshape(rows, width), want,
                                   rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_a_strided_input_is_copied_into_the_output_and_normalised_there_in_c(monkeypatch):
    """Swin's first norm reads the patch embedding's output through a
    Transpose (a view): the input is copied into y and the C rows normalise
    it in place (NumPy's float64 path took 7 MB of temporaries), in a
    compiled schedule as one bound sequence of the two C calls."""
    calls = []
    c_call = _core.BoundLayerNormRows
    monkeypatch.setattr(_core, "BoundLayerNormRows", lambda *a: calls.append(a) or c_call(*a))
    rng = np.random.default_rng(3)
    scale = rng.standard_normal(12).astype(np.float32)
    bias = rng.standard_normal(12).astype(np.float32)
    t = helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 3, 1])
    ln = helper.make_node("LayerNormalization", ["xt", "scale", "bias"], ["y"], axis=-1)
    graph = helper.make_graph([t, ln], "ln", [helper.make_tensor_value_info("x", F32, [1, 12, 5, 6])],
                              [helper.make_tensor_value_info("y", F32, [1, 5, 6, 12])],
                              [numpy_helper.from_array(scale, "scale"),
                               numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    x = rng.standard_normal((1, 12, 5, 6)).astype(np.float32)
    rep = lco.prepare(model)
    ref = _reference(x.transpose(0, 2, 3, 1), scale, bias, -1, 1e-5)[0]
    for _ in range(2):   # the first run, then the compiled schedule's
        y = rep.run([x])[0]
        assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < TOL
    assert calls, "the C kernel did not run"
    from test_bound_pool import bound_types
    assert "BoundSequence" in bound_types(rep.program.schedule)
