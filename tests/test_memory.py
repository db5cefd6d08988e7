"""The memory contract: workspace_bytes is exact and is what the call uses;
each algorithm's workspace follows its documented formula."""
import numpy as np
import pytest

import leanconv as lc
from leanconv import _core

SHAPES = [
    # (x shape, w shape, kwargs)
    ((1, 8, 17, 13), (12, 8, 3, 3), dict(padding=1)),
    ((2, 6, 11, 11), (6, 3, 3, 3), dict(padding=1, groups=2)),
    ((1, 16, 9, 9), (16, 1, 3, 3), dict(padding=1, groups=16)),
    ((1, 24, 7, 7), (20, 24, 1, 1), {}),
    ((1, 3, 23, 23), (8, 3, 7, 7), dict(stride=2, padding=3)),
    # 32x32 output: Im2Col pads its patch matrix's rows (lc_im2col_ldb)
    ((1, 4, 32, 32), (6, 2, 3, 3), dict(padding=1, groups=2)),
    # 256 input channels: Winograd's channel-lanes GEMM
    ((1, 256, 6, 6), (64, 256, 3, 3), dict(padding=1)),
]


def tile(isa):
    return _core.isa_tile(_core.ISA_NAMES.index(isa))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("xs,ws,kw", SHAPES)
def test_workspace_is_exact_and_used(isa, xs, ws, kw, threads):
    x = np.ones(xs, np.float32)
    w = np.ones(ws, np.float32)
    for a in lc.algorithms():
        if not lc.supports(a, xs, ws, **kw):
            continue
        plan = lc.Conv2d(w, algorithm=a, **kw)
        expect = plan.workspace_bytes(xs, threads=threads)
        assert expect == lc.workspace_bytes(xs, ws, algorithm=a, threads=threads, **kw)
        plan(x, threads=threads)
        assert _core.last_workspace_bytes() == expect, a


def test_formulas(isa):
    mr, nr, kc = tile(isa)
    x, w = (1, 64, 56, 56), (64, 64, 3, 3)
    K, P = 64 * 9, 56 * 56
    assert lc.workspace_bytes(x, w, padding=1, algorithm="im2col") == K * (-(-P // nr) * nr) * 4
    for t in (1, 2):
        assert lc.workspace_bytes(x, w, padding=1, algorithm="patch2vec", threads=t) == t * K * nr * 4
    # a 1 x 1 layer reads B in place where its few row passes do not pack it
    assert lc.workspace_bytes(x, (32, 64, 1, 1), algorithm="im2col") == 0
    # P floats a multiple of 1 KiB: each patch-matrix row gets 16 floats more,
    # so the GEMM's column loads do not all alias (32x32 CIFAR layers)
    xc = (1, 16, 32, 32)
    assert lc.workspace_bytes(xc, (16, 16, 3, 3), padding=1, algorithm="im2col") == \
        16 * 9 * (1024 + 16) * 4
    assert lc.workspace_bytes(x, (64, 1, 3, 3), padding=1, groups=64, algorithm="depthwise") == 0
    assert lc.workspace_bytes(x, w, padding=1, algorithm="direct") == 0


def test_patch2vec_workspace_does_not_grow_with_the_image(isa):
    w = (64, 64, 3, 3)
    small = lc.workspace_bytes((1, 64, 14, 14), w, padding=1, algorithm="patch2vec", threads=1)
    large = lc.workspace_bytes((1, 64, 224, 224), w, padding=1, algorithm="patch2vec", threads=1)
    assert small == large


def test_winograd_workspace_is_bounded_by_the_block(isa):
    w = (32, 32, 3, 3)
    for a in ("winograd_f2", "winograd_f4", "winograd_f6"):
        mid = lc.workspace_bytes((1, 32, 112, 112), w, padding=1, algorithm=a, threads=1)
        big = lc.workspace_bytes((1, 32, 448, 448), w, padding=1, algorithm=a, threads=1)
        assert big == mid, a


def test_packed_bytes(isa):
    mr, nr, kc = tile(isa)
    w = np.zeros((64, 32, 3, 3), np.float32)
    raw = w.nbytes
    assert lc.Conv2d(w, algorithm="direct").packed_bytes == raw
    assert lc.Conv2d(w, algorithm="im2col").packed_bytes == (-(-64 // mr) * mr) * 32 * 9 * 4
    for m, alpha in ((2, 4), (4, 6), (6, 8)):
        plan = lc.Conv2d(w, algorithm=f"winograd_f{m}")
        assert plan.packed_bytes == alpha * alpha * (-(-64 // mr) * mr) * 32 * 4


def test_packed_bytes_channel_lanes(isa):
    """256 input channels: U is packed in panels of CW output channels where
    the ISA's channel-lanes GEMM is used (its tile as large as the GEMM's),
    else of MR."""
    mr, nr, _ = tile(isa)
    rows, cw = _core._ukernel_wino_cl_shape(isa)
    w = np.zeros((64, 256, 3, 3), np.float32)
    used = rows * cw >= mr * nr and 64 % cw == 0 and 256 * cw * 4 <= 32 * 1024
    panel = cw if used else mr
    for m, alpha in ((2, 4), (4, 6), (6, 8)):
        plan = lc.Conv2d(w, algorithm=f"winograd_f{m}")
        assert plan.packed_bytes == alpha * alpha * (-(-64 // panel) * panel) * 256 * 4


def test_vgg_layer_numbers(isa):
    """The headline comparison: a 64->64 3x3 layer on 224x224."""
    x, w = (1, 64, 224, 224), (64, 64, 3, 3)
    im2col = lc.workspace_bytes(x, w, padding=1, algorithm="im2col", threads=1)
    p2v = lc.workspace_bytes(x, w, padding=1, algorithm="patch2vec", threads=1)
    assert im2col > 100e6          # ~115 MB
    assert p2v * 50 <= im2col


def _aligned_bytes(n, offset=0):
    raw = np.zeros(n + 128, np.uint8)
    skip = (-raw.ctypes.data) % 64 + offset
    return raw[skip:skip + n]


def test_a_lent_workspace_is_used_instead_of_allocating(isa):
    """An executor lends one scratch buffer to every call (leanconv.onnx's
    schedule does): the result is the same, and a buffer too small (planned
    for fewer threads) is not used; a wrong one is a clear error."""
    x = np.random.default_rng(0).standard_normal((1, 16, 20, 20)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((24, 16, 3, 3)).astype(np.float32)
    for a in ("im2col", "winograd_f4", "patch2vec"):
        if not lc.supports(a, x.shape, w.shape, padding=1):
            continue
        plan = lc.Conv2d(w, algorithm=a, padding=1)
        want = plan(x, threads=1)
        need = plan.workspace_bytes(x.shape, threads=1)
        assert need > 0, a
        for lent, used in ((_aligned_bytes(need), True), (_aligned_bytes(need // 2), False)):
            lent[:] = 0xAB
            np.testing.assert_array_equal(plan(x, threads=1, workspace=lent), want)
            assert _core.last_workspace_bytes() == need
            assert bool((lent != 0xAB).any()) == used, a   # scratch written there, or not
        with pytest.raises(ValueError, match="64-byte"):
            plan(x, threads=1, workspace=_aligned_bytes(need, offset=4))
        with pytest.raises(TypeError, match="workspace must be"):
            plan(x, threads=1, workspace=np.zeros(need // 4, np.float32))
        y = np.empty_like(want)
        with pytest.raises(ValueError, match="workspace overlaps"):
            plan(x, out=y, threads=1, workspace=y.reshape(-1).view(np.uint8))
