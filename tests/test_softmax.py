"""kernels/softmax.c (leanconv._core.softmax) against a float64 reference on
every ISA (the vector exp of kernels/softmax_lanes_template.h, or the portable
loop): a classifier's row, many short rows over threads, rows that end
part-way through a vector, large logits, -inf entries, NaN and +inf, in place;
softmax over a middle axis (columns inner floats apart); the same bits at
every thread count; and the argument checks."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core, _isa
from test_bound_pool import bound_types


def reference(x, axis=1):
    z = x.astype(np.float64)
    with np.errstate(invalid="ignore"):   # an all -inf or +inf row: NaN, as ONNX's
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)


def close(y, want):
    """Within 1e-6 relative of float64 (an absolute 1e-37 for the values
    below exp's normal range, which the vector exp flushes to 0)."""
    want = want.astype(np.float64)
    err = np.abs(y.astype(np.float64) - want)
    bad = err > 1e-6 * np.abs(want) + 1e-37
    assert not bad.any(), (f"{bad.sum()} values off, worst relative "
                           f"{np.max(err / np.maximum(np.abs(want), 1e-37)):.3g}")


def run(x, outer, n, inner, threads):
    y = np.full(x.size, np.nan, np.float32)
    _core.softmax(np.ascontiguousarray(x).reshape(-1), y, outer, n, threads, inner,
                  _isa.isa_id())
    return y


# n = 32, 64, 128 (and one more): the longest rows each ISA sums without
# compensation (8 exps a lane) and the shortest it compensates; nearly equal
# values (every exp near 1, none a power of two) are the worst case for an
# uncompensated sum
@pytest.mark.parametrize("rows, n, scale", [(1, 1000, 1.0), (37, 9, 5.0), (4, 1, 1.0),
                                            (3, 300, 80.0), (2, 4097, 3.0), (5, 17, 1.0),
                                            (1, 21843, 10.0), (300, 49, 4.0), (90, 197, 2.0),
                                            (3, 32, 1e-3), (3, 33, 1e-3), (3, 64, 1e-3),
                                            (3, 65, 1e-3), (3, 128, 1e-3), (3, 129, 1e-3)])
def test_rows_match_float64_with_the_same_bits_at_every_thread_count(isa, rows, n, scale):
    x = (np.random.default_rng(n).standard_normal((rows, n)) * scale).astype(np.float32)
    if n > 2:
        x[0, 1] = -np.inf
    outs = [run(x, rows, n, 1, threads).reshape(rows, n) for threads in (1, 2, 3)]
    close(outs[0], reference(x))
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


@pytest.mark.parametrize("outer, n, inner", [(1, 21, 7 * 9), (2, 1000, 3), (3, 5, 130),
                                             (1, 1, 17), (2, 64, 64)])
def test_a_middle_axis_matches_float64_with_the_same_bits_at_every_thread_count(
        isa, outer, n, inner):
    x = (np.random.default_rng(inner).standard_normal((outer, n, inner)) * 4).astype(np.float32)
    outs = [run(x, outer, n, inner, threads).reshape(outer, n, inner) for threads in (1, 2, 3)]
    close(outs[0], reference(x))
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


def test_the_exp_over_its_whole_range(isa):
    """Rows of two values, 0 and d: the second output is e^d / (1 + e^d), so
    a sweep of d over [-87, 0] checks the exp everywhere it is used."""
    d = np.linspace(-87.0, 0.0, 200003, dtype=np.float32)
    x = np.stack([np.zeros_like(d), d], axis=1)
    y = run(x, d.size, 2, 1, 2).reshape(-1, 2)
    close(y, reference(x))


def test_in_place_nan_and_inf(isa):
    x = np.random.default_rng(1).standard_normal((4, 40)).astype(np.float32)
    x[1, 4] = np.nan
    x[2, 39] = np.inf
    x[3, :] = -np.inf
    want = reference(x)   # NumPy: NaN rows for each of the three
    y = x.copy().reshape(-1)
    _core.softmax(y, y, 4, 40, 2, 1, _isa.isa_id())
    y = y.reshape(4, 40)
    assert np.isnan(y[1:]).all() and np.isnan(want[1:]).all()
    close(y[0], want[0])
    cols = np.ascontiguousarray(x.T)   # the same along a middle axis
    yc = run(cols, 1, 40, 4, 1).reshape(40, 4)
    assert np.isnan(yc[:, 1:]).all()
    close(yc[:, 0], want[0])


def test_refuses_sizes_that_do_not_match():
    x = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="outer \\* n \\* inner"):
        _core.softmax(x, np.zeros(11, np.float32), 3, 4, 1)
    with pytest.raises(ValueError, match="outer \\* n \\* inner"):
        _core.softmax(x, x, 3, 5, 1)
    with pytest.raises(ValueError, match="n and inner >= 1"):
        _core.softmax(x[:0], x[:0], 0, 0, 1)
    with pytest.raises(ValueError, match="n and inner >= 1"):
        _core.softmax(x, x, 3, 4, 1, 0)
    with pytest.raises(ValueError, match="threads"):
        _core.softmax(x, x, 3, 4, 0)


@pytest.mark.parametrize("opset, axis, shape", [(9, 1, (2, 10, 3, 4)), (9, 2, (2, 10, 3, 4)),
                                                (13, 1, (2, 10, 3, 4)), (13, -1, (3, 1000)),
                                                (13, 2, (2, 3, 5, 7)), (11, 0, (4, 6))])
def test_an_onnx_softmax_is_a_bound_c_call_matching_float64(isa, opset, axis, shape):
    """Compiled, a Softmax runs as a _core.BoundSoftmax in the schedule's C
    loop (no Python, no NumPy) for its axis form: opset 13's one axis (any
    position: a middle one is columns), before 13 every axis from it on."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    import leanconv.onnx as lco
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=axis)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    x = (np.random.default_rng(7).standard_normal(shape) * 20).astype(np.float32)
    for threads in (1, 2):
        rep = lco.prepare(model, threads=threads)
        y = rep.run({"x": x})[0]
        r = np.maximum(x, 0).astype(np.float64)
        a = axis % len(shape)
        flat = r.reshape(int(np.prod(shape[:a])), -1) if opset < 13 else r
        close(y.reshape(flat.shape), reference(flat, 1 if opset < 13 else a))
        assert "BoundSoftmax" in bound_types(rep.program.schedule)


def test_softmax_bind_refuses_what_c_does_not_take():
    pytest.importorskip("onnx")
    from leanconv.onnx.ops_math import softmax_bind
    x = np.zeros((2, 3, 4), np.float32)
    assert isinstance(softmax_bind(np.empty_like(x), x, 1, False, 1), _core.BoundSoftmax)
    assert softmax_bind(np.empty((2, 3, 4)), x.astype(np.float64), 1, False, 1) is None
    assert softmax_bind(np.empty((2, 2, 4), np.float32), x[:, ::2], 1, False, 1) is None
    assert softmax_bind(np.empty((0, 3), np.float32), np.zeros((0, 3), np.float32), 1,
                        False, 1) is None
