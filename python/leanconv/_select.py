"""Algorithm choice: what "auto" and "winograd" mean for a shape, and
whether a named algorithm can do it."""
from __future__ import annotations

from . import _core
from ._params import ConvSpec

ALGORITHMS = _core.ALGORITHMS
WINOGRAD = ("winograd_f2", "winograd_f4", "winograd_f6")
_ALIASES = ("auto", "winograd")


def algorithm_id(name: str) -> int:
    return ALGORITHMS.index(name)


def check_name(algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, got {type(algorithm).__name__}")
    if algorithm not in ALGORITHMS and algorithm not in _ALIASES:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of "
                         f"{', '.join(_ALIASES + ALGORITHMS)}")
    return algorithm


def why_unsupported(name: str, spec: ConvSpec, isa_id: int, geometry=None):
    """None if `name` can run this convolution, else the constraint it breaks."""
    if geometry is None:  # filter-only question: any input the weights accept
        geometry = (1, spec.C, spec.kH, spec.kW, spec.M, spec.kH, spec.kW, 1, 1) + \
            spec.stride + spec.dilation + spec.pads + (spec.groups,)
    return _core.why_unsupported(algorithm_id(name), isa_id, geometry)


# ---- a shape-based cost model for "auto" -------------------------------------
# Units: one multiply-add of the GEMM micro-kernel.  Terms, each measured on
# the layers of bench/perf_layers.py (AVX-512 and AVX2, EPYC; see
# docs/performance.md):
#  * GEMM multiply-adds, with the pixel (or tile) count rounded up to whole
#    NR-wide panels, since a partial panel costs nearly a full one;
#  * Winograd transforms: gather + input transform + output transform +
#    scatter cost about _WINO_ELEM_COST[m] multiply-adds per transformed
#    value, (Cg + Mg) * alpha^2 values per tile (longer 1-D transforms cost
#    more per value);
#  * weights that do not fit in L2 stream from L3/DRAM once per pass:
#    _BYTE_COST multiply-adds per byte (the FMA rate over the bandwidth, so
#    it depends on the ISA).  For Winograd the matrix of one GEMM is one xi's
#    Mg x Cg slice of U (see winograd_cost).
_WINO_ELEM_COST = {2: 32.0, 4: 48.0, 6: 72.0}
_PACK_ELEM_COST = 4.0
_L2_BYTES = 1 << 20
_BYTE_COST = {"avx512": 8.0, "avx2": 4.0, "neon": 2.0, "scalar": 0.5}
_IM2COL_AUTO_BYTES = 8 << 20  # largest Im2Col workspace "auto" accepts
_ASSUMED_HW = 28  # output size when a plan is made without an input size


def _round_up(a, b):
    return -(-a // b) * b


def _tile_nr(isa_id):
    try:
        return _core.isa_tile(isa_id)[1]
    except ValueError:
        return 16


def _panel_lanes(n, nr):
    """Lanes the Winograd GEMMs compute for n tiles: the driver passes the
    real count, so a last panel of at most NR/2 tiles can run a half-width
    micro-kernel (kernels/gemm_driver.c picks it when the ISA has one); where
    none exists it costs a full panel, which is within the model's error."""
    full, rem = divmod(n, nr)
    return full * nr + (0 if rem == 0 else nr // 2 if rem <= nr // 2 else nr)


def _out_hw(spec: ConvSpec, hw):
    if hw is None:
        return _ASSUMED_HW, _ASSUMED_HW
    return spec.output_hw(*hw)


def gemm_cost(spec: ConvSpec, isa_id: int, hw=None) -> float:
    """Cost of Im2Col/Patch2Vec (one group), in multiply-adds."""
    OH, OW = _out_hw(spec, hw)
    nr = _tile_nr(isa_id)
    Mg, K = spec.M // spec.groups, spec.Cg * spec.kH * spec.kW
    cols = _round_up(OH * OW, nr)
    a_bytes = Mg * K * 4
    byte_cost = _BYTE_COST.get(_core.ISA_NAMES[isa_id], 4.0)
    pack = 0.0 if spec.kH == spec.kW == 1 and spec.stride == (1, 1) else K * cols * _PACK_ELEM_COST
    return Mg * K * cols + pack + (a_bytes * byte_cost if a_bytes > _L2_BYTES else 0.0)


def winograd_cost(name: str, spec: ConvSpec, isa_id: int, hw=None) -> float:
    """Cost of one Winograd variant (one group), in multiply-adds."""
    m = {"winograd_f2": 2, "winograd_f4": 4, "winograd_f6": 6}[name]
    alpha = m + 2
    OH, OW = _out_hw(spec, hw)
    nr = _tile_nr(isa_id)
    Mg, Cg = spec.M // spec.groups, spec.Cg
    tiles = -(-OH // m) * -(-OW // m)
    lanes = _panel_lanes(tiles, nr)
    # The driver runs one GEMM per xi, each streaming its own Mg x Cg slice
    # of U: what must fit L2 is that slice, not all alpha^2 of them (512@7 on
    # AVX-512: F(2,3) with 16 x 1 MB of U runs its GEMMs at the full FMA rate
    # and beats Im2Col, whose one 9.4 MB matrix does not fit).
    xi_bytes = Mg * Cg * 4
    byte_cost = _BYTE_COST.get(_core.ISA_NAMES[isa_id], 4.0)
    return (alpha * alpha * Mg * Cg * lanes
            + (Cg + Mg) * alpha * alpha * lanes * _WINO_ELEM_COST[m]
            + (alpha * alpha * xi_bytes * byte_cost if xi_bytes > _L2_BYTES else 0.0))


def winograd_variant(spec: ConvSpec, hw=None, isa_id=None) -> str:
    """Cheapest Winograd size for the shape by the cost model above: bigger
    tiles save multiplies but cost more per transformed value, waste lanes on
    small images and grow the weights (alpha^2 / 9)."""
    if isa_id is None:
        isa_id = _core.ISA_NAMES.index("scalar")
    return min(WINOGRAD, key=lambda n: winograd_cost(n, spec, isa_id, hw))


def choose(algorithm: str, spec: ConvSpec, isa_id: int, hw=None) -> str:
    """Resolve "auto"/"winograd" to a concrete algorithm for the shape (hw is
    the input height and width when known)."""
    check_name(algorithm)
    if algorithm == "winograd":
        return winograd_variant(spec, hw, isa_id)
    if algorithm != "auto":
        return algorithm
    if spec.is_depthwise:
        return "depthwise"
    if spec.kH == spec.kW == 1 and spec.stride == (1, 1) and spec.pads == (0, 0, 0, 0):
        return "im2col"  # B is the input itself: no workspace
    if why_unsupported("winograd_f4", spec, isa_id) is None:
        wino = winograd_variant(spec, hw, isa_id)
        if winograd_cost(wino, spec, isa_id, hw) < gemm_cost(spec, isa_id, hw):
            return wino
    # Im2Col unwraps whole output rows at a time and its GEMM reuses each A
    # slice across many panels: 0-7% faster than Patch2Vec's NR-pixel panels
    # (the 7x7/2 stem the most); take it while its K x P matrix stays modest,
    # else Patch2Vec's K x NR-per-thread panel.
    OH, OW = _out_hw(spec, hw)
    if spec.Cg * spec.kH * spec.kW * OH * OW * 4 <= _IM2COL_AUTO_BYTES:
        return "im2col"
    return "patch2vec"
