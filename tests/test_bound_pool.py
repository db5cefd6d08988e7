"""Pooling steps bound as C calls (_core.BoundPool, leanconv._bound_pool): the
same bits as the unbound calls on every ISA and thread count, checked
buffers, and compiled schedules (leanconv.onnx and frozen torch models) that
run them among the Convs' bound calls."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _bound_pool, _core, _isa

RUN_WS = np.zeros(0, np.uint8)

# (planes, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r)
GEOMS = [(6, 9, 9, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0),
         (5, 8, 7, 8, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
         (64, 14, 14, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0)]


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("is_max, include_pad", [(True, False), (False, False), (False, True)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bound_pool2d_gives_the_bits_of_pool2d(isa, rng, geom, is_max, include_pad, threads):
    planes, H, W, OH, OW = geom[:5]
    x = rng.standard_normal(planes * H * W).astype(np.float32)
    want = np.empty(planes * OH * OW, np.float32)
    _core.pool2d(x, want, geom, is_max, include_pad, 1, _isa.isa_id(isa))
    got = np.full_like(want, np.nan)
    call = _core.BoundPool(x, got, geom, 0, 0, is_max, include_pad, threads, _isa.isa_id(isa))
    _core.run_bound((call,), RUN_WS)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("planes, hw", [(1, 1), (7, 49), (1280, 49), (3, 0)])
def test_bound_global_average_gives_the_bits_of_global_avg_pool(rng, planes, hw):
    x = rng.standard_normal(planes * hw).astype(np.float32)
    want = np.zeros(planes, np.float32)
    _core.global_avg_pool(x, want, planes, hw, 1)
    got = np.zeros(planes, np.float32)
    _core.run_bound((_core.BoundPool(x, got, None, planes, hw, False, False, 2),), RUN_WS)
    assert got.tobytes() == want.tobytes()


def test_bound_pool_checks_its_buffers_and_threads():
    x, y = np.zeros(6 * 81, np.float32), np.zeros(6 * 16, np.float32)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.BoundPool(x[:-1], y, GEOMS[0], 0, 0, True, False, 1)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.BoundPool(x, y[:5], None, 6, 81, False, False, 1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _core.BoundPool(x, y, GEOMS[0], 0, 0, True, False, 0)
    with pytest.raises(ValueError, match="not available"):
        _core.BoundPool(x, y, GEOMS[0], 0, 0, True, False, 1, 99)


def test_only_4d_contiguous_float32_buffers_are_bound():
    x = np.zeros((1, 4, 6, 6), np.float32)
    assert _bound_pool.global_avg_pool(np.zeros((1, 4, 1, 1), np.float32), x, 1) is not None
    assert _bound_pool.global_avg_pool(np.zeros((1, 4, 1, 1), np.float32), x[:, ::2], 1) is None
    assert _bound_pool.global_avg_pool(None, x, 1) is None
    assert _bound_pool.global_avg_pool(np.zeros((1, 4, 1, 1)), x.astype(np.float64), 1) is None


def bound_types(sched):
    """The BoundCall types of a compiled schedule's C groups."""
    types = []
    for call, lent in sched._fns:
        if lent:
            types += [type(c).__name__ for c in call.args[0]]
    return types


def test_onnx_schedule_runs_pools_among_the_bound_convs(rng):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    import leanconv.onnx as lco
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1] * 4),
             helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1] * 4),
             helper.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("GlobalAveragePool", ["q"], ["y"])]
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(nodes, "pools", [helper.make_tensor_value_info("x", f32, [1, 4, 12, 12])],
                              [helper.make_tensor_value_info("y", f32, [1, 8, 1, 1])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    x = rng.standard_normal((1, 4, 12, 12)).astype(np.float32)
    rep = lco.prepare(model, threads=2)
    assert bound_types(rep.program.schedule) == ["BoundConv", "BoundPool", "BoundPool",
                                                 "BoundPool"]
    got = rep.run({"x": x})[0]
    sched = rep.program.schedule
    for s in rep.program.steps:   # the same schedule through the steps' into()
        s.bind = None
    sched._bind(sched.threads)
    assert "BoundPool" not in bound_types(sched)
    assert got.tobytes() == rep.run({"x": x})[0].tobytes()
    ref = rep.program.interpret({"x": x})[0]
    assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))


def test_frozen_schedule_runs_pools_among_the_bound_convs(rng):
    torch = pytest.importorskip("torch")
    import leanconv.torch as lct
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(3, 2, 1), torch.nn.Conv2d(8, 8, 1),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    x = torch.from_numpy(rng.standard_normal((1, 4, 12, 12)).astype(np.float32))
    with torch.no_grad():
        want = model(x)
    frozen = lct.freeze(model, x)
    with torch.no_grad():
        got = frozen(x)
        got2 = frozen(x)
    sched = next(iter(frozen._lc_scheduled.schedules.values()))
    assert bound_types(sched).count("BoundPool") == 2
    assert got.numpy().tobytes() == got2.numpy().tobytes()
    assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())


def test_pool_tables_are_counted_with_the_packed_data(rng):
    """A bound pool's plan (its tables, built once: kernels/pool.c) counts as
    packed data in the memory plan, and the row buffers a call allocates as
    its step's workspace."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    import leanconv.onnx as lco
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2])]
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(nodes, "pools", [helper.make_tensor_value_info("x", f32, [1, 8, 27, 27])],
                              [helper.make_tensor_value_info("y", f32, [1, 8, 13, 13])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    rep = lco.prepare(model, threads=2)
    sched = rep.program.schedule
    pools = [c for _, c in sched._bound_calls if isinstance(c, _core.BoundPool)]
    assert len(pools) == 2 and all(c.held_bytes > 0 for c in pools)
    assert rep.memory()["packed_weights"] == sum(c.held_bytes for c in pools)
    assert rep.memory()["workspace"] >= max(c.scratch_bytes for c in pools)
    for s, c in sched._bound_calls:
        assert s.workspace_bytes == c.scratch_bytes
    x = rng.standard_normal((1, 8, 27, 27)).astype(np.float32)
    ref = rep.program.interpret({"x": x})[0]
    assert np.max(np.abs(rep.run({"x": x})[0] - ref)) <= 1e-6 * np.max(np.abs(ref))
