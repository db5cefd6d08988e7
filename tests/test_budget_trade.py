"""The memory-budget trading rule both front ends share (leanconv/_budget.py),
on hand-made option lists: (algorithm, packed bytes, workspace bytes, cost),
the preferred option first."""
import pytest

from leanconv import _budget
from leanconv.onnx import budget as onnx_budget


def test_takes_the_switch_that_loses_least_time_per_byte():
    layers = [[("f4", 400, 0, 1.0), ("im2col", 100, 0, 2.0)],     # 300 B for 1.0 s
              [("f4", 400, 0, 1.0), ("im2col", 100, 0, 1.3)]]     # 300 B for 0.3 s
    choice, held = _budget.fit(layers, budget=600)
    assert choice == [0, 1] and held == 500
    choice, held = _budget.fit(layers, budget=200)
    assert choice == [1, 1] and held == 200


def test_a_workspace_tied_for_the_largest_is_lowered_step_by_step():
    """Two layers share the largest workspace: lowering either alone saves
    nothing, so only taking both reaches the budget."""
    layers = [[("im2col", 10, 1000, 1.0), ("patch2vec", 10, 50, 1.1)],
              [("im2col", 10, 1000, 1.0), ("patch2vec", 10, 50, 1.1)]]
    choice, held = _budget.fit(layers, budget=100)
    assert choice == [1, 1] and held == 70


def test_nothing_fits_gives_the_leanest_and_the_bytes():
    layers = [[("f4", 400, 100, 1.0), ("im2col", 100, 100, 2.0)]]
    choice, held = _budget.fit(layers, budget=50, fixed=7)
    assert choice == [1] and held == 207
    with pytest.raises(MemoryError, match="207 bytes"):
        onnx_budget.fit(layers, 7, 0, 50)
    assert onnx_budget.fit(layers, 7, 0, 50, refuse=False) == ["im2col"]


def test_floor_scratch_counts_when_larger_than_every_workspace():
    layers = [[("f4", 100, 10, 1.0)]]
    assert _budget.held(layers, [0], fixed=5, floor_scratch=30) == 135
    assert _budget.held(layers, [0], fixed=5, floor_scratch=3) == 115


def test_what_the_last_switch_left_over_is_spent_again():
    """The descent takes B off f4 first (least time lost per byte), then
    must take A off f4 too, which alone would have been enough: the 700
    bytes that leaves under the budget buy B's f4 back."""
    layers = [[("f4", 1000, 0, 1.0), ("im2col", 100, 0, 2.0)],
              [("f4", 300, 0, 1.0), ("im2col", 100, 0, 1.05)]]
    choice, held = _budget.fit(layers, budget=900)
    assert choice == [1, 0] and held == 400


def test_spending_what_is_left_never_goes_past_the_preferred_option():
    """An option cheaper than the preferred one (the cost model's prices at
    another thread count, say) is not taken just because it fits."""
    layers = [[("im2col", 100, 0, 1.0), ("f4", 400, 0, 0.5)]]
    assert _budget.fit(layers, budget=10_000) == ([0], 100)
