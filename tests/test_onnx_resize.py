"""Resize's C path (kernels/resize.c) against its NumPy form, onnxruntime, a
direct bilinear reference, and the table checks of _core.resize2d."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core

CASES = [  # mode, transform, nearest_mode, scales (N, C, H, W) or sizes
    ("linear", "half_pixel", None, [1, 1, 2, 2], None),
    ("linear", "pytorch_half_pixel", None, [1, 1, 8, 8], None),
    ("linear", "align_corners", None, None, [2, 3, 9, 4]),
    ("linear", "asymmetric", None, [1, 1, 0.5, 1.5], None),
    ("linear", "half_pixel", None, [1, 1, 1, 3], None),   # H not resized
    ("nearest", "asymmetric", "floor", [1, 1, 2, 3], None),
    ("nearest", "half_pixel", "round_prefer_ceil", None, [2, 3, 5, 11]),
    ("nearest", "half_pixel", "round_prefer_floor", [1, 1, 0.6, 0.5], None),
]


@pytest.mark.parametrize("mode, transform, nearest, scales, sizes", CASES)
def test_c_resize_matches_numpy_and_onnxruntime(mode, transform, nearest, scales, sizes,
                                                monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import helper
    from test_onnx_adapter import assert_matches_ort, make_model, rng

    import leanconv.onnx as lco
    attrs = dict(mode=mode, coordinate_transformation_mode=transform)
    if nearest:
        attrs["nearest_mode"] = nearest
    inits = [("roi", np.zeros(0, np.float32))]
    if sizes is None:
        inits.append(("scales", np.array(scales, np.float32)))
        inputs = ["x", "roi", "scales"]
    else:
        inits += [("scales", np.zeros(0, np.float32)), ("sizes", np.array(sizes, np.int64))]
        inputs = ["x", "roi", "scales", "sizes"]
    model = make_model([helper.make_node("Resize", inputs, ["y"], **attrs)],
                       [("x", (2, 3, 6, 7))], [("y", None)], inits, opset=19)
    x = {"x": rng(14).standard_normal((2, 3, 6, 7)).astype(np.float32)}
    calls = []
    real = _core.resize2d

    def spy(*args):
        calls.append(args[-2])
        return real(*args)
    monkeypatch.setattr(_core, "resize2d", spy)
    rep = lco.prepare(model)
    ours = rep.run(x)[0]
    assert calls == [mode == "linear"]
    numpy_form = rep.program.interpret(x)[0]   # the step's NumPy function
    assert np.allclose(ours, numpy_form, rtol=1e-6, atol=1e-6)
    assert_matches_ort(model, x, tol=1e-5)


def test_resize2d_checks_its_tables():
    x, y = np.zeros(2 * 4 * 4, np.float32), np.zeros(2 * 3 * 5, np.float32)
    i3, i5 = np.zeros(3, np.int64), np.zeros(5, np.int64)
    w3, w5 = np.zeros(3, np.float32), np.zeros(5, np.float32)
    _core.resize2d(x, y, 2, 4, 4, i3, i3, w3, i5, i5, w5, True, 1)
    with pytest.raises(ValueError, match="out of range"):
        _core.resize2d(x, y, 2, 4, 4, i3 + 4, i3, w3, i5, i5, w5, True, 1)
    with pytest.raises(ValueError, match="out of range"):
        _core.resize2d(x, y, 2, 4, 4, i3, i3, w3, i5, i5 - 1, w5, False, 1)
    with pytest.raises(ValueError, match="lengths"):
        _core.resize2d(x, y, 2, 4, 4, i3, i3, w5, i5, i5, w5, True, 1)
    with pytest.raises(ValueError, match="sizes"):
        _core.resize2d(x, y[:-1], 2, 4, 4, i3, i3, w3, i5, i5, w5, True, 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_resize2d_bilinear_against_a_direct_reference(threads):
    g = np.random.default_rng(15)
    x = g.standard_normal((3, 5, 6)).astype(np.float32)
    r0, r1 = np.array([0, 1, 4, 4], np.int64), np.array([1, 2, 4, 4], np.int64)
    rw = np.array([0.25, 0.5, 0.0, 0.0], np.float32)
    c0, c1 = np.array([0, 2, 5], np.int64), np.array([1, 3, 5], np.int64)
    cw = np.array([0.75, 0.0, 0.0], np.float32)
    out = np.empty(3 * 4 * 3, np.float32)
    _core.resize2d(x.reshape(-1), out, 3, 5, 6, r0, r1, rw, c0, c1, cw, True, threads)
    xd = x.astype(np.float64)
    rows = xd[:, r0] + (xd[:, r1] - xd[:, r0]) * rw[None, :, None]
    want = rows[:, :, c0] + (rows[:, :, c1] - rows[:, :, c0]) * cw
    np.testing.assert_allclose(out.reshape(3, 4, 3), want, rtol=1e-6, atol=1e-6)
    _core.resize2d(x.reshape(-1), out, 3, 5, 6, r0, r1, rw, c0, c1, cw, False, threads)
    np.testing.assert_array_equal(out.reshape(3, 4, 3), x[:, r0][:, :, c0])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [
    # (row0, row1, row_w): an upsample reading each input row for several output
    # rows, rows read again after others (b then a), a row as a and as b at once,
    # a weight-0 row between blended ones
    ([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 2, 3, 3, 3, 3], [0, .5, .25, .75, .25, .75, 0, 0]),
    ([1, 0, 2, 1, 3, 3, 0], [2, 1, 3, 2, 3, 0, 3], [.5, .5, .1, 0, 0, .3, .9]),
])
def test_resize2d_reuses_resized_rows_correctly(threads, rows):
    r0, r1, rw = (np.array(v, t) for v, t in zip(rows, (np.int64, np.int64, np.float32)))
    g = np.random.default_rng(16)
    planes, H, W = 5, 4, 7
    x = g.standard_normal((planes, H, W)).astype(np.float32)
    c0 = np.array([0, 0, 1, 3, 6, 6, 2, 5, 4], np.int64)
    c1 = np.minimum(c0 + 1, W - 1)
    cw = np.linspace(0, 0.9, c0.size).astype(np.float32)
    out = np.empty(planes * r0.size * c0.size, np.float32)
    _core.resize2d(x.reshape(-1), out, planes, H, W, r0, r1, rw, c0, c1, cw, True, threads)
    xd = x.astype(np.float64)
    cols = xd[:, :, c0] + (xd[:, :, c1] - xd[:, :, c0]) * cw
    want = cols[:, r0] + (cols[:, r1] - cols[:, r0]) * rw[None, :, None]
    np.testing.assert_allclose(out.reshape(planes, r0.size, c0.size), want, rtol=1e-6, atol=1e-6)
