"""kernels/binary.c through leanconv.onnx.broadcast_binary: broadcasting Add,
Sub, Mul and Div of float32 arrays and the copy of a strided view, bound as
one C call.  Each element is one IEEE operation, so the result is NumPy's
bit for bit at every thread count, for broadcast axes, strided, reversed and
transposed views, scalars and in-place outputs; what the C loop cannot take
is refused (None: NumPy does it); bad arguments to the bound call raise."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core
from leanconv.onnx.broadcast_binary import binary_bind, concat_bind, copy_bind, merged_axes

UFUNCS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
_WS = np.empty(0, np.uint8)


def run(call):
    _core.run_bound((call,), _WS)


def operand(rng, spec):
    """A float32 operand: a shape, or ("T", shape, perm) a transposed view,
    or ("R", shape) a view reversed along its last axis, or ("S", shape) every
    other element of its last axis."""
    if isinstance(spec, tuple) and spec and spec[0] == "T":
        return rng.standard_normal(spec[1]).astype(np.float32).transpose(spec[2])
    if isinstance(spec, tuple) and spec and spec[0] == "R":
        return rng.standard_normal(spec[1]).astype(np.float32)[..., ::-1]
    if isinstance(spec, tuple) and spec and spec[0] == "S":
        return rng.standard_normal(spec[1]).astype(np.float32)[..., ::2]
    return rng.standard_normal(spec).astype(np.float32)


CASES = [((64, 3, 49, 49), (1, 3, 49, 49)),            # Swin's relative position bias
         ((1, 16, 3, 49, 49), (1, 16, 1, 49, 49)),      # Swin's shifted-window mask
         ((2, 8, 5, 5), (2, 8, 1, 1)),                  # a per-plane gate
         ((7, 9), ()), ((), (4, 5)), ((5, 1), (1, 6)), ((3,), (3,)), ((1,), (1,)),
         (("T", (3, 10, 7, 6), (1, 0, 3, 2)), (1,)),    # a strided view times a scalar
         (("R", (4, 33)), (33,)), ((4, 33), ("R", (1, 33))),
         (("S", (6, 40)), ("S", (6, 40))),
         ((2, 3, 4, 5, 6, 7), (1, 3, 1, 5, 1, 7))]      # six axes that do not merge


@pytest.mark.parametrize("op", sorted(UFUNCS))
@pytest.mark.parametrize("a_spec, b_spec", CASES)
def test_every_op_and_broadcast_is_numpys_bits_at_every_thread_count(op, a_spec, b_spec):
    rng = np.random.default_rng(len(str(a_spec)) + len(str(b_spec)))
    a, b = operand(rng, a_spec), operand(rng, b_spec)
    if op == "Div":
        b = b + np.float32(3.0)   # (a 0 divisor is NumPy's inf all the same; fewer warnings)
    want = UFUNCS[op](a, b)
    for threads in (1, 2, 3):
        y = np.full(want.shape, np.nan, np.float32)
        call = binary_bind(op, y, a, b, threads)
        assert call is not None
        run(call)
        np.testing.assert_array_equal(y, want)


def test_in_place_into_the_first_operand():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 3, 49, 49)).astype(np.float32)
    b = rng.standard_normal((3, 49, 49)).astype(np.float32)
    want = a + b
    call = binary_bind("Add", a, a, b, 2)
    assert call is not None
    run(call)
    np.testing.assert_array_equal(a, want)


def test_copy_of_a_strided_view_is_its_elements_in_c_order():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((2, 3, 8, 8, 5)).astype(np.float32)
    for view in (base.transpose(0, 2, 1, 3, 4), base[:, ::-1, :, ::2], base.transpose(4, 3, 2, 1, 0),
                 base[1, 2]):
        for threads in (1, 2):
            y = np.full(view.size, np.nan, np.float32)
            call = copy_bind(y, view, threads)
            assert call is not None
            run(call)
            np.testing.assert_array_equal(y, view.reshape(-1))


def test_axes_merge_where_every_operand_walks_them_as_one():
    assert merged_axes((64, 3, 49, 49), [7203, 2401, 49, 1], [0, 2401, 49, 1]) == \
        ([64, 7203], [[7203, 1], [0, 1]])
    assert merged_axes((1, 1), [5, 1], [0, 0]) == ([1], [[1], [1]])
    assert merged_axes((4, 1, 5), [5, 99, 1], [0, 7, 0]) == ([20], [[1], [0]])
    assert merged_axes((4, 5), [5, 1], [1, 0]) == ([4, 5], [[5, 1], [1, 0]])
    # a Concat's slice of its output: rows 10 floats apart, 4 of them written
    assert merged_axes((3, 4), [10, 1], [4, 1], [4, 1]) == ([3, 4], [[10, 1], [4, 1], [4, 1]])


def test_refuses_what_the_c_loop_does_not_take():
    a = np.ones((4, 5), np.float32)
    assert binary_bind("Add", np.empty((4, 5)), a.astype(np.float64), a, 1) is None
    assert binary_bind("Add", np.empty((4, 5), np.float32), a, a.astype(np.float64), 1) is None
    assert binary_bind("Add", np.empty((5, 4), np.float32).T, a, a, 1) is None   # y not contiguous
    assert binary_bind("Add", np.empty((4, 6), np.float32), a, a, 1) is None     # y's shape
    assert binary_bind("Add", np.empty((4, 5), np.float32), a, np.ones(3, np.float32), 1) is None
    seven = np.ones((2, 1) * 7, np.float32)   # seven axes that do not merge
    other = np.ones((1, 2) * 7, np.float32)
    assert binary_bind("Add", np.empty((2,) * 14, np.float32), seven, other, 1) is None
    # an operand overlapping y other than as y itself
    buf = np.arange(20, dtype=np.float32)
    assert binary_bind("Add", buf[:10], buf[5:15], np.float32(1.0), 1) is None
    sq = np.ones((6, 6), np.float32)
    assert binary_bind("Add", sq, sq.T, np.float32(1.0), 1) is None
    assert copy_bind(sq, sq.T, 1) is None
    assert copy_bind(np.empty(35, np.float32), sq, 1) is None


def test_the_bound_call_checks_its_arguments():
    a = np.ones((4, 5), np.float32)
    out = np.empty((4, 5), np.float32)
    ok = ([5, 1], a, [5, 1], [4, 5], out, [5, 1], 1)
    _core.BoundBinary(0, a, *ok)
    with pytest.raises(ValueError, match="op must be 0-4"):
        _core.BoundBinary(5, a, *ok)
    with pytest.raises(TypeError, match="float32"):
        _core.BoundBinary(0, a.astype(np.float64), *ok)
    with pytest.raises(TypeError, match="float32"):
        _core.BoundBinary(0, a, [5, 1], a, [5, 1], [4, 5], out.astype(np.float64), [5, 1], 1)
    with pytest.raises(ValueError, match="1 to 6 axes"):
        _core.BoundBinary(0, a, [5, 1, 1], a, [5, 1], [4, 5, 1], out, [5, 1], 1)
    with pytest.raises(ValueError, match="1 to 6 axes"):
        _core.BoundBinary(0, a, [], a, [], [], out, [], 1)
    with pytest.raises(ValueError, match="every axis"):
        _core.BoundBinary(0, a, [5, 1], a, [5, 1], [0, 5], out, [5, 1], 1)
    with pytest.raises(ValueError, match="last stride"):
        _core.BoundBinary(0, a, [5, 1], a, [5, 1], [4, 5], out, [1, 4], 1)
    with pytest.raises(ValueError, match="writeable"):
        _core.BoundBinary(0, a, [5, 1], a, [5, 1], [4, 5], np.broadcast_to(out, (4, 5)), [5, 1],
                          1)
    with pytest.raises(ValueError, match="threads"):
        _core.BoundBinary(0, a, [5, 1], a, [5, 1], [4, 5], out, [5, 1], 0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_a_concat_of_views_is_bound_copies_into_its_slices(axis):
    rng = np.random.default_rng(11)
    base = rng.standard_normal((4, 6, 10)).astype(np.float32)
    xs = [base[:2], base[2:]] if axis == 0 else \
        [base[:, 4:], base[:, :4]] if axis == 1 else [base[..., 7:], base[..., 1:7:2], base[..., :1]]
    want = np.concatenate(xs, axis=axis)
    for threads in (1, 2):
        y = np.full(want.shape, np.nan, np.float32)
        call = concat_bind(y, xs, axis, threads)
        assert call is not None
        run(call)
        np.testing.assert_array_equal(y, want)
    y = np.empty(want.shape, np.float32)
    assert concat_bind(y, [x.astype(np.int64) for x in xs], axis, 1) is None   # NumPy's
    assert concat_bind(y, xs[:1], axis, 1) is None                             # too few


@pytest.mark.parametrize("op", sorted(UFUNCS))
def test_onnx_binary_ops_of_float32_are_bound_c_calls_matching_numpy(op):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import leanconv.onnx as lco
    from test_bound_pool import bound_types
    bias = (np.random.default_rng(5).standard_normal((3, 7, 7)) + 3).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node(op, ["t", "bias"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (4, 7, 3, 7))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (4, 3, 7, 7))],
        [numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(6).standard_normal((4, 7, 3, 7)).astype(np.float32)
    for threads in (1, 2):
        rep = lco.prepare(model, threads=threads)
        y = rep.run({"x": x})[0]
        np.testing.assert_array_equal(y, UFUNCS[op](x.transpose(0, 2, 1, 3), bias))
        assert "BoundBinary" in bound_types(rep.program.schedule)
    del onnx


def test_onnx_pad_by_nothing_and_reshape_of_a_permuted_view_are_bound_copies():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import leanconv.onnx as lco
    from test_bound_pool import bound_types
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Pad", ["t", "pads"], ["p"]),
             helper.make_node("Transpose", ["p"], ["u"], perm=[0, 3, 2, 1]),
             helper.make_node("Reshape", ["u", "shape"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 5, 3, 8))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (2, 120))],
        [numpy_helper.from_array(np.zeros(8, np.int64), "pads"),
         numpy_helper.from_array(np.array([2, 120], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(7).standard_normal((2, 5, 3, 8)).astype(np.float32)
    rep = lco.prepare(model, threads=2)
    y = rep.run({"x": x})[0]
    np.testing.assert_array_equal(y, x.transpose(0, 2, 1, 3).transpose(0, 3, 2, 1).reshape(2, 120))
    assert bound_types(rep.program.schedule).count("BoundBinary") == 2


def test_a_bound_sequence_runs_its_calls_in_order_and_takes_only_bound_calls():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    mid = np.empty(12, np.float32)
    out = np.empty(12, np.float32)
    first = copy_bind(mid, a.T, 1)                             # mid = a^T, flat
    second = binary_bind("Mul", out, mid, np.float32(2.0), 1)   # out = 2 mid
    run(_core.BoundSequence(first, second))
    np.testing.assert_array_equal(out, 2 * a.T.reshape(-1))
    with pytest.raises(TypeError, match="BoundCall"):
        _core.BoundSequence(first, "not a call")
    with pytest.raises(TypeError, match="BoundCall"):
        _core.BoundSequence()
