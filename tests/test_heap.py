"""leanconv._heap: huge pages under a model's long-lived buffers."""
from __future__ import annotations

import mmap

import numpy as np
import pytest

from leanconv import _heap


def _setup_or_skip():
    setup = _heap._huge_page_setup()
    if setup is None:
        pytest.skip("no transparent huge pages here")
    return setup


def _private_map(nbytes):
    # private: a shared anonymous mapping is shmem, whose huge pages are another setting
    return mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _span(m, huge):
    """An address in mapping m where a whole huge-page span starts, and the
    span as a NumPy array."""
    buf = np.frombuffer(m, np.uint8)
    start = -buf.ctypes.data % huge
    return buf.ctypes.data + start, buf[start:start + huge]


def test_nothing_to_do_and_bad_ranges_are_no_ops():
    assert _heap.back_with_huge_pages([]) == 0
    assert _heap.back_with_huge_pages([(0, 0), (4096, -1)]) == 0
    # an address with nothing mapped: mincore fails, the span is skipped
    assert _heap.back_with_huge_pages([(1 << 46, 4096)]) == 0


def test_a_resident_span_is_collapsed_and_keeps_its_contents():
    _, _, huge = _setup_or_skip()
    m = _private_map(2 * huge)
    try:
        address, span = _span(m, huge)
        span[:] = np.arange(huge, dtype=np.uint64).astype(np.uint8)   # all pages resident
        done = _heap.back_with_huge_pages([(address + 100, 1000)], 0)
        # 0 where the kernel cannot collapse now (before Linux 6.1, or no huge page free)
        assert done in (0, huge)
        assert np.array_equal(span, np.arange(huge, dtype=np.uint64).astype(np.uint8))
        del span
    finally:
        m.close()


def test_a_mostly_unused_span_is_left_alone():
    """Collapsing would make the whole span resident: not past the budget."""
    _, base, huge = _setup_or_skip()
    m = _private_map(2 * huge)
    try:
        address, span = _span(m, huge)
        span[:huge // 4] = 1
        assert _heap.back_with_huge_pages([(address, huge)], huge // 2) == 0
        done = _heap.back_with_huge_pages([(address, huge)], huge)
        assert done in (0, huge)
        del span
    finally:
        m.close()


def test_a_prepared_model_still_runs_the_same():
    """prepare backs the schedule's buffers with huge pages; a run after is
    bitwise the run of a schedule that was not (the bytes did not move)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import leanconv.onnx as lco
    g = np.random.default_rng(0)
    w1 = g.standard_normal((64, 3, 3, 3)).astype(np.float32)
    w2 = g.standard_normal((64, 64, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["y"], pads=[1] * 4)]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "net", [vi("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [vi("y", TensorProto.FLOAT, [1, 64, 32, 32])],
                              [numpy_helper.from_array(w1, "w1"),
                               numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    x = g.standard_normal((1, 3, 32, 32)).astype(np.float32)
    rep = lco.prepare(model)
    sched = rep.program.schedule
    packed = [c.packed_range for _, c in sched._bound_calls if hasattr(c, "packed_range")]
    assert len(packed) == 2 and all(a > 0 and n > 0 for a, n in packed)
    assert sum(n for _, n in packed) == sched.packed_bytes
    before = rep.run({"x": x})[0]
    assert sched.back_with_huge_pages() >= 0
    assert np.array_equal(rep.run({"x": x})[0], before)
