"""The fused inverted-residual block (kernels/ir_block.c, leanconv._ir_block):
an expanding 1x1 convolution and the depthwise one after it, computed band by
band, against a float64 reference on every ISA; the same bits at any thread
count and band height; bad input refused by name."""
from __future__ import annotations

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core
from leanconv._ir_block import InvertedResidual, fusion_info


@pytest.fixture(autouse=True)
def rule_restored():
    yield
    _core.ir_block_debug(0, -1)


def _act64(v, act):
    if act is None:
        return v
    if act == "relu":
        return np.maximum(v, 0)
    if act == "hardswish":
        return v * np.clip(v + 3, 0, 6) / 6
    assert act[0] == "clamp"
    return np.clip(v, act[1], act[2])


def reference(x, we, be, act_e, wd, bd, act_d, stride, pads, dilation):
    """float64: the 1x1, its activation (none where we is None), the
    depthwise, its activation."""
    t = x.astype(np.float64)
    if we is not None:
        t = np.einsum("ec,nchw->nehw", we[:, :, 0, 0].astype(np.float64), t)
        if be is not None:
            t += be[None, :, None, None]
        t = _act64(t, act_e)
    (sh, sw), (dh, dw) = stride, dilation
    pt, pb, pl, pr = pads
    tp = np.pad(t, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kH, kW = wd.shape[2:]
    OH = (tp.shape[2] - dh * (kH - 1) - 1) // sh + 1
    OW = (tp.shape[3] - dw * (kW - 1) - 1) // sw + 1
    y = np.zeros(t.shape[:2] + (OH, OW))
    for ky in range(kH):
        for kx in range(kW):
            win = tp[:, :, ky * dh:ky * dh + sh * (OH - 1) + 1:sh,
                     kx * dw:kx * dw + sw * (OW - 1) + 1:sw]
            y += wd[None, :, 0, ky, kx, None, None].astype(np.float64) * win
    if bd is not None:
        y += bd[None, :, None, None]
    return _act64(y, act_d)


def make(rng, N, C, E, H, W, k, bias=True):
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    we = (rng.standard_normal((E, C, 1, 1)) / np.sqrt(C)).astype(np.float32)
    wd = (rng.standard_normal((E, 1) + k) / 3).astype(np.float32)
    be = rng.standard_normal(E).astype(np.float32) if bias else None
    bd = rng.standard_normal(E).astype(np.float32) if bias else None
    return x, we, be, wd, bd


RELU6 = ("clamp", 0.0, 6.0)

# (N, C, E, H, W, kernel, stride, pads, dilation, act_e, act_d, bias)
CASES = [
    (1, 5, 19, 13, 11, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), RELU6, RELU6, True),
    (2, 5, 19, 13, 11, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), RELU6, RELU6, True),
    (1, 3, 17, 9, 14, (3, 3), (2, 2), (0, 1, 0, 1), (1, 1), "relu", None, False),   # SAME, TF
    (1, 4, 16, 12, 12, (3, 3), (2, 1), (1, 0, 0, 1), (1, 1), RELU6, RELU6, True),
    (1, 6, 20, 11, 9, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), "hardswish", "hardswish", True),
    (2, 6, 20, 11, 9, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), RELU6, RELU6, True),
    (1, 4, 10, 10, 10, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), None, RELU6, True),   # dilation 2
    (1, 2, 8, 7, 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), RELU6, None, True),
    (1, 3, 12, 5, 5, (1, 3), (1, 2), (0, 0, 1, 1), (1, 1), RELU6, RELU6, True),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("band", [0, 1, 2, 3])
def test_matches_float64_reference(isa, case, band):
    N, C, E, H, W, k, stride, pads, dilation, act_e, act_d, bias = case
    x, we, be, wd, bd = make(np.random.default_rng(7), N, C, E, H, W, k, bias)
    _core.ir_block_debug(band, -1)
    blk = InvertedResidual(we, be, act_e, wd, bd, act_d, stride, pads, dilation)
    y = blk(x, threads=1)
    ref = reference(x, we, be, act_e, wd, bd, act_d, stride, pads, dilation)
    assert y.shape == ref.shape
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 2e-6


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[7]])
def test_same_bits_at_any_thread_count_and_on_its_own_output(isa, case):
    N, C, E, H, W, k, stride, pads, dilation, act_e, act_d, bias = case
    x, we, be, wd, bd = make(np.random.default_rng(8), N, C, E, H, W, k, bias)
    _core.ir_block_debug(2, -1)   # several bands, unequal last one
    blk = InvertedResidual(we, be, act_e, wd, bd, act_d, stride, pads, dilation)
    ys = [blk(x, threads=t) for t in (1, 2, 3)]
    out = np.full_like(ys[0], np.nan)
    blk(x, out=out, threads=2)
    for y in ys[1:] + [out]:
        assert np.array_equal(y, ys[0])


def test_bands_from_the_cache_and_the_rule():
    """Bands fill L2 (at least one output row), a lone image in two runs at
    least; fusing pays only for tensors of at least ir_fuse_min (3/4 of L2)
    with the 3x3 plane kernel, whatever the thread count."""
    l2 = _core.cache_sizes()["l2"]
    fuse_min = _core.blocking()["ir_fuse_min"]
    for E, H in ((96, 112), (32, 20), (144, 56), (8, 1024)):
        answers = set()
        for threads in (1, 2):
            info = fusion_info((E, 16, 1, 1), (E, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1),
                               (1, 16, H, H), threads=threads)
            answers.add(info["pays"])
        rows_in = info["band_rows"] + 2
        assert info["why"] is None and 1 <= info["band_rows"] <= -(-H // 2)
        assert rows_in * E * H * 4 <= max(l2, 3 * E * H * 4)
        big = E * H * H * 4 >= fuse_min
        fits = l2 // (E * H * 4) >= 3   # the 3 expanded rows of one output row
        assert answers == {big and fits and "avx" in lc.isa()}


@pytest.mark.parametrize("stride", [1, 2])
def test_one_band_image_uses_two_threads_with_the_same_bits(isa, stride):
    """An image whose expanded rows all fit one band of the cache budget is
    still split into runs, fixed by its shape: two threads get a task each
    (a band buffer each) and every thread count gives the same bits."""
    x, we, be, wd, bd = make(np.random.default_rng(11), 1, 24, 144, 14, 14, (3, 3))
    blk = InvertedResidual(we, be, RELU6, wd, bd, RELU6, stride, 1, 1)
    info = blk.info(x.shape, threads=1)
    assert 16 * 144 * 14 * 4 <= _core.cache_sizes()["l2"]   # one band would hold it all
    assert info["band_rows"] < blk.output_shape(x.shape)[2]
    assert blk.info(x.shape, threads=2)["workspace_bytes"] == 2 * info["workspace_bytes"]
    ys = [blk(x, threads=t) for t in (1, 2, 3)]
    for y in ys[1:]:
        assert np.array_equal(y, ys[0])
    ref = reference(x, we, be, RELU6, wd, bd, RELU6, (stride,) * 2, (1,) * 4, (1, 1))
    assert np.max(np.abs(ys[0] - ref)) / np.max(np.abs(ref)) < 2e-6


def test_bad_input_is_refused_by_name():
    x, we, be, wd, bd = make(np.random.default_rng(9), 1, 4, 8, 6, 6, (3, 3))
    with pytest.raises(TypeError, match="float32"):
        InvertedResidual(we.astype(np.float64), be, None, wd, bd, None, 1, 1, 1)
    with pytest.raises(ValueError, match="wd must be"):
        InvertedResidual(we, be, None, wd[:4], bd, None, 1, 1, 1)
    with pytest.raises(ValueError, match="be must hold"):
        InvertedResidual(we, be[:3], None, wd, bd, None, 1, 1, 1)
    blk = InvertedResidual(we, be, None, wd, bd, None, 1, 1, 1)
    with pytest.raises(TypeError, match="float32"):
        blk(x.astype(np.float64))
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        blk(x[:, :3])
    with pytest.raises(ValueError, match="out must be"):
        blk(x, out=np.empty((1, 8, 5, 5), np.float32))
    assert fusion_info(we.shape, wd.shape, 1, (4, 4, 4, 4), 1, x.shape)["why"] is not None


def test_band_buffers_are_written_before_read():
    """Under poisoned per-thread scratch (NaN at every item) and a reversed
    schedule the result keeps its bits: no band reads another's rows."""
    case = CASES[5]
    N, C, E, H, W, k, stride, pads, dilation, act_e, act_d, bias = case
    x, we, be, wd, bd = make(np.random.default_rng(10), N, C, E, H, W, k, bias)
    _core.ir_block_debug(2, -1)
    blk = InvertedResidual(we, be, act_e, wd, bd, act_d, stride, pads, dilation)
    want = blk(x, threads=2)
    _core.debug_schedule(poison_scratch=True, reverse=True)
    try:
        got = blk(x, threads=2)
    finally:
        _core.debug_schedule()
    assert np.array_equal(got, want)


def project64(y, wp, bp, act_p, residual):
    """float64: the projecting 1x1 after the depthwise, its residual and activation."""
    z = np.einsum("pe,nehw->nphw", wp[:, :, 0, 0].astype(np.float64), y)
    if bp is not None:
        z += bp[None, :, None, None]
    if residual is not None:
        z += residual
    return _act64(z, act_p)


# (case index in CASES, P, act_p, residual): MobileNetV2's projection (no
# activation, a residual), a wide one past MR rows, an odd P below MR
PROJECT_CASES = [(0, 5, None, True), (1, 37, RELU6, False), (4, 3, "relu", True),
                 (6, 9, None, False), (8, 7, None, True)]


@pytest.mark.parametrize("pcase", PROJECT_CASES, ids=[f"p{i}" for i in range(len(PROJECT_CASES))])
@pytest.mark.parametrize("band", [0, 1, 3])
@pytest.mark.parametrize("expand", [True, False], ids=["expand", "dw_first"])
def test_projection_matches_float64_reference(isa, pcase, band, expand):
    """The projecting 1x1 fused after the depthwise (each band's rows from the
    thread's depthwise buffer): against float64, with a residual and
    out=residual, the same bits at any thread count and bound as a compiled
    schedule runs it; also without the expanding 1x1 (dw_first: MobileNetV2's
    first block, the depthwise reading x's planes in place)."""
    ci, P, act_p, with_res = pcase
    N, C, E, H, W, k, stride, pads, dilation, act_e, act_d, bias = CASES[ci]
    rng = np.random.default_rng(12)
    x, we, be, wd, bd = make(rng, N, C if expand else E, E, H, W, k, bias)
    if not expand:
        we = be = act_e = None
    wp = (rng.standard_normal((P, E, 1, 1)) / np.sqrt(E)).astype(np.float32)
    bp = rng.standard_normal(P).astype(np.float32) if bias else None
    _core.ir_block_debug(band, -1)
    blk = InvertedResidual(we, be, act_e, wd, bd, act_d, stride, pads, dilation,
                           project=(wp, bp, act_p))
    shape = blk.output_shape(x.shape)
    res = rng.standard_normal(shape).astype(np.float32) if with_res else None
    y64 = reference(x, we, be, act_e, wd, bd, act_d, stride, pads, dilation)
    ref = project64(y64, wp, bp, act_p, res)
    z = blk(x, threads=1, residual=res)
    assert z.shape == ref.shape
    assert np.max(np.abs(z - ref)) / np.max(np.abs(ref)) < 4e-6
    for t in (2, 3):
        assert np.array_equal(blk(x, threads=t, residual=res), z)
    got = np.full(shape, np.nan, np.float32)
    call = blk.bind(x, got, threads=2, residual=res)
    ws = np.zeros(call.workspace_bytes + 64, np.uint8)
    _core.run_bound((call,), ws[(-ws.ctypes.data) % 64:])
    assert np.array_equal(got, z)
    if with_res:
        out = res.copy()
        blk(x, out=out, threads=2, residual=out)   # the residual's buffer taken over
        # (summed onto the residual, as the 1x1 path does in place: other bits)
        assert np.max(np.abs(out - ref)) / np.max(np.abs(ref)) < 4e-6


def test_projection_workspace_rule_and_bad_input():
    """The projection adds a band of depthwise rows per thread to the
    workspace; it pays where the depthwise output is at least ir_fuse_min in a block
    that pays; a residual without it, or of the wrong shape, is refused."""
    rng = np.random.default_rng(13)
    x, we, be, wd, bd = make(rng, 1, 4, 8, 6, 6, (3, 3))
    wp = rng.standard_normal((5, 8, 1, 1)).astype(np.float32)
    plain = InvertedResidual(we, be, None, wd, bd, None, 1, 1, 1)
    blk = InvertedResidual(we, be, None, wd, bd, None, 1, 1, 1, project=(wp, None, None))
    i0, i1 = plain.info(x.shape, threads=1), blk.info(x.shape, threads=1)
    band = i1["band_rows"]
    assert i1["workspace_bytes"] - i0["workspace_bytes"] == -(-8 * band * 6 * 4 // 64) * 64
    assert blk(x).shape == (1, 5, 6, 6)
    with pytest.raises(ValueError, match="residual needs the projection"):
        plain(x, residual=np.zeros((1, 8, 6, 6), np.float32))
    with pytest.raises(ValueError, match="residual must be"):
        blk(x, residual=np.zeros((1, 8, 6, 6), np.float32))
    with pytest.raises(ValueError, match="wp must be"):
        InvertedResidual(we, be, None, wd, bd, None, 1, 1, 1, project=(wp[:, :3], None, None))
    fuse_min = _core.blocking()["ir_fuse_min"]
    for E, H, stride in ((96, 112, 2), (144, 56, 1), (144, 56, 2)):
        info = fusion_info((E, 16, 1, 1), (E, 1, 3, 3), (stride,) * 2, (1, 1, 1, 1), (1, 1),
                           (1, 16, H, H), wp_shape=(24, E, 1, 1))
        OH = (H - 1) // stride + 1
        assert info["project_pays"] == (info["pays"] and E * OH * OH * 4 >= fuse_min)


def test_depthwise_first_block_rule_workspace_and_bad_input():
    """Without the expanding 1x1 the workspace is the depthwise rows' band
    alone, the projection pays where the depthwise output is at least ir_fuse_min and
    the 3x3 plane kernel serves it; a block of the depthwise alone, or
    expansion parts without we, are refused by name."""
    rng = np.random.default_rng(17)
    x, _, _, wd, bd = make(rng, 1, 8, 8, 6, 6, (3, 3))
    wp = rng.standard_normal((5, 8, 1, 1)).astype(np.float32)
    blk = InvertedResidual(None, None, None, wd, bd, None, 1, 1, 1, project=(wp, None, None))
    info = blk.info(x.shape, threads=1)
    assert info["why"] is None and not info["pays"] and info["packed_floats"] == 0
    assert info["workspace_bytes"] == -(-8 * info["band_rows"] * 6 * 4 // 64) * 64
    assert blk(x).shape == (1, 5, 6, 6)
    with pytest.raises(ValueError, match="needs the projection"):
        InvertedResidual(None, None, None, wd, bd, None, 1, 1, 1)
    with pytest.raises(ValueError, match="be and act_e need"):
        InvertedResidual(None, bd, None, wd, bd, None, 1, 1, 1, project=(wp, None, None))
    with pytest.raises(ValueError, match="input must be"):
        blk(np.zeros((1, 4, 6, 6), np.float32))
    fuse_min = _core.blocking()["ir_fuse_min"]
    plane = fusion_info(None, (32, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (1, 32, 112, 112),
                        wp_shape=(16, 32, 1, 1))
    assert plane["why"] is None
    with_e = fusion_info((32, 32, 1, 1), (32, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1),
                         (1, 32, 112, 112), wp_shape=(16, 32, 1, 1))
    # the plane kernel's presence, read off the expanding block's rule
    assert plane["project_pays"] == (with_e["pays"] and 32 * 112 * 112 * 4 >= fuse_min)
    small = fusion_info(None, (32, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (1, 32, 8, 8),
                        wp_shape=(16, 32, 1, 1))
    assert not small["project_pays"]
    five = fusion_info(None, (32, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), (1, 32, 112, 112),
                       wp_shape=(16, 32, 1, 1))
    assert five["why"] is None and not five["project_pays"]   # no 5x5 plane kernel
    alone = fusion_info(None, (32, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (1, 32, 112, 112))
    assert "needs the projection" in alone["why"]


@pytest.mark.parametrize("pcase", [None] + PROJECT_CASES[:3], ids=["plain", "p0", "p1", "p2"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bound_block_has_the_same_bits_as_the_call(isa, pcase, threads):
    """InvertedResidual.bind (a _core.BoundIRBlock run by run_bound, as a
    compiled leanconv.onnx schedule does among its Convs) gives the call's
    bits: with and without the projection, a residual, out=residual."""
    ci, P, act_p, with_res = pcase if pcase is not None else (2, None, None, False)
    N, C, E, H, W, k, stride, pads, dilation, act_e, act_d, bias = CASES[ci]
    rng = np.random.default_rng(14)
    x, we, be, wd, bd = make(rng, N, C, E, H, W, k, bias)
    project = None
    if P is not None:
        wp = (rng.standard_normal((P, E, 1, 1)) / np.sqrt(E)).astype(np.float32)
        project = (wp, rng.standard_normal(P).astype(np.float32) if bias else None, act_p)
    blk = InvertedResidual(we, be, act_e, wd, bd, act_d, stride, pads, dilation, project=project)
    shape = blk.output_shape(x.shape)
    res = rng.standard_normal(shape).astype(np.float32) if with_res else None
    want = blk(x, threads=threads, residual=res)
    got = np.full(shape, np.nan, np.float32)
    call = blk.bind(x, got, threads=threads, residual=res)
    ws = np.zeros(call.workspace_bytes + 64, np.uint8)
    ws = ws[(-ws.ctypes.data) % 64:]
    _core.run_bound((call,), ws)
    assert np.array_equal(got, want)
    if with_res:
        want = res.copy()
        blk(x, out=want, threads=threads, residual=want)
        got = res.copy()
        _core.run_bound((blk.bind(x, got, threads=threads, residual=got),), ws)
        assert np.array_equal(got, want)


def test_bind_leaves_unbindable_buffers_to_the_call():
    rng = np.random.default_rng(15)
    x, we, be, wd, bd = make(rng, 1, 4, 8, 6, 6, (3, 3))
    blk = InvertedResidual(we, be, None, wd, bd, None, 1, 1, 1)
    out = np.empty(blk.output_shape(x.shape), np.float32)
    assert blk.bind(x, out) is not None
    assert blk.bind(x[:, :, :, ::-1], out) is None          # not C-contiguous
    assert blk.bind(x, out.astype(np.float64)) is None      # not float32
    assert blk.bind(x, out[:, :4]) is None                  # not the output's shape
    assert blk.bind(x, out, residual=out) is None           # a residual needs the projection
