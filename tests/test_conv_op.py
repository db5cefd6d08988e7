"""The C operator (kernels/conv_op.c) through its binding, _core.Op:
create / reshape / run / release, the decisions it remembers, the packings
it keeps and frees, and the errors it reports."""
import numpy as np
import pytest

import leanconv as lc
from cases import beyond_im2col_limit
from leanconv import _core, _isa
from leanconv._params import ConvSpec
from leanconv._select import filter_geometry

ALGOS = lc.algorithms()
AUTO, WINOGRAD_ANY = -1, -2
# input sizes in a row: the cost model moves between Winograd sizes and GEMM
SIZES = [(1, 56, 56), (1, 5, 5), (2, 14, 30), (1, 7, 7), (1, 112, 96), (3, 9, 9), (1, 3, 3),
         (1, 56, 56)]
# ... and one whose Im2Col matrix is over the limit whatever the L2 (with a
# 2 MiB L2 the scalar prices pick Im2Col for every size above)
CHANGING_SIZES = SIZES[:5] + [(1,) + (beyond_im2col_limit(24),) * 2] + SIZES[5:]


def make_op(isa, w, b, request, max_packings=2, borrow=False, **conv):
    spec = ConvSpec.build(w.shape, conv.get("stride", 1), conv.get("padding", 1), 1,
                          conv.get("groups", 1), "relu")
    op = _core.Op(request, _isa.isa_id(isa), w.reshape(-1), b, filter_geometry(spec),
                  spec.epilogue, max_packings, borrow)
    return op, spec


def call(op, spec, x, algorithm=-1, threads=1):
    N, C, H, W = x.shape
    geom = spec.geometry(N, C, H, W)
    y = np.empty((N, spec.M) + spec.output_hw(H, W), np.float32)
    op.run(x.reshape(-1), y.reshape(-1), None, geom, threads, None, algorithm)
    return y


@pytest.fixture
def filters(rng):
    w = rng.standard_normal((24, 24, 3, 3)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    return w, b


def test_reshape_to_many_sizes_matches_named_operators(isa, rng, filters):
    w, b = filters
    op, spec = make_op(isa, w, b, AUTO)
    named = {}
    used = set()
    for N, H, W in CHANGING_SIZES:
        x = rng.standard_normal((N, 24, H, W)).astype(np.float32)
        a, ws = op.decide(N, H, W, 1, remember=False)
        y = call(op, spec, x)
        assert op.algorithm == a == op.decided(N, H, W, 1)
        assert _core.last_workspace_bytes() == ws
        assert op.packings <= 2
        used.add(a)
        if a not in named:
            named[a] = make_op(isa, w, b, a)[0]
        assert y.tobytes() == call(named[a], spec, x).tobytes(), (N, H, W, ALGOS[a])
    assert len(used) >= 2


def test_override_is_remembered_and_shares_layouts(isa, rng, filters):
    w, b = filters
    op, spec = make_op(isa, w, b, AUTO)
    x = rng.standard_normal((1, 24, 20, 20)).astype(np.float32)
    im2col, p2v = ALGOS.index("im2col"), ALGOS.index("patch2vec")
    call(op, spec, x, im2col)
    assert op.decided(1, 20, 20, 1) == im2col
    made, held = _core.packings_made(), op.packed_bytes
    call(op, spec, x, p2v)
    call(op, spec, x, ALGOS.index("direct"))  # reads the weights in place
    assert _core.packings_made() == made and op.packed_bytes == held
    assert op.decided(1, 20, 20, 1) == ALGOS.index("direct")
    assert op.decided(1, 20, 20, 2) == -1  # per thread count


def test_a_held_packing_outlives_its_eviction(isa, rng, filters):
    w, b = filters
    op, spec = make_op(isa, w, b, AUTO, max_packings=1, borrow=True)
    x = rng.standard_normal((1, 24, 16, 16)).astype(np.float32)
    f4 = op.setup(1, 16, 16, 1, ALGOS.index("winograd_f4"), remember=False)
    alone = op.packed_bytes
    call(op, spec, x, ALGOS.index("im2col"))  # evicts F4 from the kept set
    both = op.packed_bytes
    assert op.packings == 1 and both > alone > 0
    y = np.empty((1, 24, 16, 16), np.float32)
    f4.run(x.reshape(-1), y.reshape(-1))
    assert y.tobytes() == call(make_op(isa, w, b, ALGOS.index("winograd_f4"))[0], spec,
                               x).tobytes()
    f4.release()
    f4.release()  # idempotent
    assert op.packed_bytes == both - alone  # F4's packing is freed
    assert op.decided(1, 16, 16, 1) == ALGOS.index("im2col")


def test_named_operator_packs_at_creation(isa, filters):
    w, b = filters
    made = _core.packings_made()
    op, spec = make_op(isa, w, b, ALGOS.index("winograd_f2"))
    assert _core.packings_made() == made + 1
    assert op.algorithm == ALGOS.index("winograd_f2") == op.decided(1, 9, 9, 4)
    ws = op.decide(1, 9, 9, 1)[1]
    assert ws == _core.sizes(ALGOS.index("winograd_f2"), _isa.isa_id(isa),
                             spec.geometry(1, 24, 9, 9), 1)[1]
    # the caller's weights are not kept: only the packing counts
    assert op.packed_bytes == _core.sizes(ALGOS.index("winograd_f2"), _isa.isa_id(isa),
                                          spec.geometry(1, 24, 9, 9), 1)[0]


def test_winograd_request_picks_a_winograd_size(isa, filters):
    w, b = filters
    op, _ = make_op(isa, w, b, WINOGRAD_ANY)
    for N, H, W in SIZES:
        assert ALGOS[op.decide(N, H, W, 1)[0]].startswith("winograd_f")


def test_errors(isa, filters):
    w, b = filters
    op, _ = make_op(isa, w, b, AUTO)
    with pytest.raises(ValueError, match="cannot run"):
        op.decide(1, 9, 9, 1, ALGOS.index("depthwise"))  # groups != C
    unpadded, _ = make_op(isa, w, b, AUTO, padding=0)
    assert unpadded.decide(1, 3, 3, 1)[0] >= 0
    with pytest.raises(ValueError, match="1x2x3 input"):
        unpadded.decide(1, 2, 3, 1)  # smaller than the kernel
    named, _ = make_op(isa, w, b, ALGOS.index("im2col"))
    with pytest.raises(ValueError, match="cannot run"):
        named.setup(1, 9, 9, 1, ALGOS.index("winograd_f4"))  # not its layout
    assert named.setup(1, 9, 9, 1, ALGOS.index("patch2vec")).algorithm == ALGOS.index("patch2vec")
    w5 = np.ones((4, 24, 5, 5), np.float32)
    with pytest.raises(ValueError, match="cannot run"):
        make_op(isa, w5, None, ALGOS.index("winograd_f4"))
    with pytest.raises(ValueError, match="do not match"):
        _core.Op(AUTO, _isa.isa_id(isa), w.reshape(-1)[:-1], b,
                 filter_geometry(make_op(isa, w, b, AUTO)[1]), None, 2)


GEMM_AND_WINOGRAD = [a for a in ALGOS if a not in ("direct", "depthwise")]


@pytest.mark.parametrize("algorithm", GEMM_AND_WINOGRAD)
def test_a_setup_reused_across_runs_gives_the_same_bits(isa, rng, filters, algorithm):
    """reshape fixes the driver's tiling once: a setup run again and again,
    on other inputs in between, gives the bits a fresh reshape gives."""
    w, b = filters
    if algorithm.endswith("_lean"):   # whole panels of the channel lanes: 32 outputs
        w, b = np.concatenate([w, w[:8]]), np.concatenate([b, b[:8]])
    a = ALGOS.index(algorithm)
    op, spec = make_op(isa, w, b, a)
    N, H, W = 2, 13, 11
    xs = [rng.standard_normal((N, 24, H, W)).astype(np.float32) for _ in range(2)]
    for threads in (1, 2):
        s = op.setup(N, H, W, threads, a)
        fresh = [call(op, spec, x, a, threads) for x in xs]
        for _ in range(2):
            for x, want in zip(xs, fresh):
                y = np.empty_like(want)
                s.run(x.reshape(-1), y.reshape(-1))
                assert y.tobytes() == want.tobytes(), (algorithm, threads)
        s.release()


@pytest.mark.parametrize("algorithm", GEMM_AND_WINOGRAD)
def test_reshape_with_another_thread_count_replans(isa, rng, algorithm):
    """A 2x2 image is one panel and one Winograd tile: one thread takes it
    whole, two share it out by output channels (64: two blocks of 2 x MR
    rows on every ISA), so reshape's tiling differs; the same geometry again
    gives the same tiling, the workspace is the exact one for its thread
    count, and the bits do not depend on the threads.  256 input channels:
    enough multiply-adds (590 K) that the work repays a second thread
    (lc_threads_for_work, kernels/parallel.c)."""
    w = rng.standard_normal((64, 256, 3, 3)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    a = ALGOS.index(algorithm)
    op, spec = make_op(isa, w, b, a)
    x = rng.standard_normal((1, 256, 2, 2)).astype(np.float32)
    setups = {t: op.setup(1, 2, 2, t, a) for t in (1, 2)}
    assert setups[1].tiling != setups[2].tiling
    assert op.setup(1, 2, 2, 2, a).tiling == setups[2].tiling
    geom = spec.geometry(1, 256, 2, 2)
    outs = {}
    for t, s in setups.items():
        assert s.workspace_bytes == _core.sizes(a, _isa.isa_id(isa), geom, t)[1]
        outs[t] = np.empty((1, 64, 2, 2), np.float32)
        s.run(x.reshape(-1), outs[t].reshape(-1))
        s.release()
    assert outs[1].tobytes() == outs[2].tobytes()


def test_the_thread_rule_weighs_a_depthwise_multiply_add_above_a_gemm_one(isa, rng):
    """960@7 3x3 depthwise is 423 K multiply-adds, under the 2 x 262144 a
    second thread needs in GEMM multiply-adds, but each costs about four
    (LC_WORK_PER_DEPTHWISE_MAC, kernels/internal.h): it runs on two threads;
    a 1x1 convolution of as many multiply-adds (96 -> 96 on 7x7: 451 K) on
    one.  The depthwise bits do not depend on the threads."""
    THREADS = 1   # the as-run thread count, second word of the tiling's head
    depthwise = ALGOS.index("depthwise")
    w = rng.standard_normal((960, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(960).astype(np.float32)
    op, spec = make_op(isa, w, b, depthwise, groups=960)
    assert op.setup(1, 7, 7, 2, depthwise).tiling[THREADS] == 2
    x = rng.standard_normal((1, 960, 7, 7)).astype(np.float32)
    assert call(op, spec, x, depthwise, 1).tobytes() == call(op, spec, x, depthwise, 2).tobytes()
    im2col = ALGOS.index("im2col")
    w1 = rng.standard_normal((96, 96, 1, 1)).astype(np.float32)
    op1, _ = make_op(isa, w1, b[:96], im2col, padding=0)
    assert op1.setup(1, 7, 7, 2, im2col).tiling[THREADS] == 1


def test_decisions_table_grows_then_forgets_the_least_recently_used(rng, filters):
    """The operator's table of remembered decisions starts small and grows
    with the geometries it meets (most operators see one or two), up to 256;
    beyond that the least recently used geometry makes room."""
    w, b = filters
    op, spec = make_op("scalar", w, b, AUTO)
    sizes = [(1, 3 + i, 5) for i in range(300)]
    decided = {}
    for N, H, W in sizes:
        decided[(N, H, W)] = op.decide(N, H, W, 1)[0]
    assert all(op.decided(*g, 1) == a for g, a in list(decided.items())[-256:])
    assert all(op.decided(*g, 1) == -1 for g in sizes[:300 - 256])
    op.decide(*sizes[-256], 1)          # used again: the newest now
    op.decide(1, 400, 5, 1)             # a new one pushes out the oldest left
    assert op.decided(*sizes[-256], 1) == decided[sizes[-256]]
    assert op.decided(*sizes[-255], 1) == -1
    x = rng.standard_normal((1, 24, 100, 5)).astype(np.float32)
    a = op.decided(1, 100, 5, 1)
    assert a >= 0
    assert call(op, spec, x).tobytes() == call(make_op("scalar", w, b, a)[0], spec, x).tobytes()
