"""An inverted-residual block's expanding 1x1 convolution and the depthwise
convolution after it as one call (kernels/ir_block.c), for the adapters'
rewrites (leanconv.onnx's ir_block.py, leanconv.torch.freeze's):

    y = act_d(depthwise(act_e(conv1x1(x, We) + be), Wd) + bd)

computed band by band of output rows, so the expanded tensor never goes to
memory; optionally with the projecting 1x1 after them as well,

    z = act_p(conv1x1(y, Wp) + bp [+ residual])

run on each band's depthwise rows while they are in cache, so y is not
stored either.  A block may also start at the depthwise (no expanding 1x1:
MobileNetV2's first block), with the projection after it: y is then not
stored.  Whether fusing pays is the C side's rule (the expanded tensor
would not stay in one core's L2 between two steps: lc_ir_block_pays); `pays()`
asks it for an input shape."""
from __future__ import annotations

import numpy as np

from leanconv import _core, _isa, _scratch, _threads
from leanconv._params import ConvSpec


def fusion_info(we_shape, wd_shape, stride, pads, dilation, x_shape, threads=None,
                wp_shape=None):
    """ir_block_info's dict (why, band_rows, pays, project_pays,
    packed_floats, workspace_bytes) for a block of these weight shapes
    (we_shape None: no expanding 1x1; wp_shape: the projection's, or None)
    on inputs of x_shape, with no weights at hand (the rewrites decide
    before loading them)."""
    E, C = we_shape[:2] if we_shape is not None else (wd_shape[0], wd_shape[0])
    if len(x_shape) != 4 or x_shape[1] != C or tuple(wd_shape[:2]) != (E, 1) or \
            (wp_shape is not None and (len(wp_shape) != 4 or wp_shape[1] != E)):
        return {"why": "the shapes do not make such a block", "pays": False,
                "project_pays": False}
    spec_d = ConvSpec.build(tuple(wd_shape), stride, pads, dilation, E)
    N, _, H, W = x_shape
    gd = spec_d.geometry(N, E, H, W)
    gp = None
    if wp_shape is not None:
        gp = ConvSpec.build(tuple(wp_shape), 1, 0, 1, 1).geometry(N, E, *spec_d.output_hw(H, W))
    ge = None if we_shape is None else \
        ConvSpec.build(tuple(we_shape), 1, 0, 1, 1).geometry(N, C, H, W)
    return _core.ir_block_info(_isa.isa_id(), ge, gd, gp, _threads.resolve(threads))


class InvertedResidual:
    """we (E, C, 1, 1), be (E) or None, act_e -- or all three None: no
    expanding 1x1, the depthwise reads x (C = E), and a projection is
    required; wd (E, 1, kH, kW), bd (E) or None, act_d; the depthwise's
    stride, pads (top, bottom, left, right) and dilation; project: None, or
    (wp (P, E, 1, 1), bp (P) or None, act_p), the projecting 1x1 after the
    depthwise.  Activations as leanconv's
    `activation=` (None, "relu", ("clamp", 0, 6), ...).  The 1x1s' weights
    are packed per ISA on first use; the raw ones are dropped then, unless
    keep_raw (another ISA may need them)."""

    def __init__(self, we, be, act_e, wd, bd, act_d, stride, pads, dilation, keep_raw=False,
                 project=None):
        wd = np.asarray(wd)
        if wd.dtype != np.float32:
            raise TypeError(f"InvertedResidual: wd must be float32, got {wd.dtype}")
        if we is None:
            if be is not None or act_e is not None:
                raise ValueError("InvertedResidual: be and act_e need the expanding 1x1 (we)")
            if project is None:
                raise ValueError("InvertedResidual: a block without the expanding 1x1 (we=None) "
                                 "needs the projection")
            if wd.ndim != 4:
                raise ValueError(f"InvertedResidual: wd must be (E, 1, kH, kW), got {wd.shape}")
            E = C = wd.shape[0]
            self.spec_e = self._we = None
        else:
            we = np.asarray(we)
            if we.dtype != np.float32:
                raise TypeError(f"InvertedResidual: we must be float32, got {we.dtype}")
            if we.ndim != 4 or we.shape[2:] != (1, 1):
                raise ValueError(f"InvertedResidual: we must be (E, C, 1, 1), got {we.shape}")
            E, C = we.shape[:2]
            self.spec_e = ConvSpec.build(we.shape, 1, 0, 1, 1, act_e)
            self._we = np.ascontiguousarray(we).reshape(-1)
        if wd.ndim != 4 or wd.shape[:2] != (E, 1):
            raise ValueError(f"InvertedResidual: wd must be ({E}, 1, kH, kW), got {wd.shape}")
        self.spec_d = ConvSpec.build(wd.shape, stride, pads, dilation, E, act_d)
        self.E, self.C = E, C
        self.be = _vector(be, E, "be")
        self.wd = np.ascontiguousarray(wd).reshape(-1)
        self.bd = _vector(bd, E, "bd")
        self.spec_p = self._wp = self.bp = None
        self.P = E
        if project is not None:
            wp, bp, act_p = project
            wp = np.asarray(wp)
            if wp.dtype != np.float32:
                raise TypeError(f"InvertedResidual: wp must be float32, got {wp.dtype}")
            if wp.ndim != 4 or wp.shape[1:] != (E, 1, 1):
                raise ValueError(f"InvertedResidual: wp must be (P, {E}, 1, 1), got {wp.shape}")
            self.spec_p = ConvSpec.build(wp.shape, 1, 0, 1, 1, act_p)
            self.P = wp.shape[0]
            self._wp = np.ascontiguousarray(wp).reshape(-1)
            self.bp = _vector(bp, self.P, "bp")
        self._packed = {}   # ISA id -> (packed 1x1 weights or None, packed projection or None)
        self._calls = {}    # (input shape, ISA id, threads) -> (geometries, workspace bytes)
        self.keep_raw = keep_raw

    def geometries(self, x_shape):
        """(the 1x1's, the depthwise's, the projection's or None) geometry
        tuples for input x_shape."""
        N, C, H, W = _dims(x_shape, self.C)
        gp = None if self.spec_p is None else \
            self.spec_p.geometry(N, self.E, *self.spec_d.output_hw(H, W))
        ge = None if self.spec_e is None else self.spec_e.geometry(N, C, H, W)
        return ge, self.spec_d.geometry(N, self.E, H, W), gp

    def output_shape(self, x_shape):
        N, _, H, W = _dims(x_shape, self.C)
        return (N, self.P) + self.spec_d.output_hw(H, W)

    def info(self, x_shape, threads=None, isa_id=None):
        """ir_block_info's dict (why, band_rows, pays, project_pays,
        packed_floats, workspace_bytes) for inputs of x_shape."""
        ge, gd, gp = self.geometries(x_shape)
        return _core.ir_block_info(_isa.isa_id() if isa_id is None else isa_id, ge, gd, gp,
                                   _threads.resolve(threads))

    def pays(self, x_shape, threads=None):
        i = self.info(x_shape, threads)
        return i["why"] is None and i["pays"]

    def packed(self, isa_id):
        """(the 1x1's weights or None, the projection's or None) packed for
        ISA isa_id (the raw ones are dropped after the first packing unless
        keep_raw)."""
        p = self._packed.get(isa_id)
        if p is None:
            if self._raw_dropped():
                raise RuntimeError(f"InvertedResidual: packed for ISA id(s) {sorted(self._packed)}"
                                   f" and the raw weights were dropped; prepare again to run "
                                   f"under ISA id {isa_id}")
            p = self._packed[isa_id] = (
                None if self._we is None else
                _pack(isa_id, self.spec_e.geometry(1, self.C, 1, 1), self._we),
                None if self._wp is None else
                _pack(isa_id, self.spec_p.geometry(1, self.E, 1, 1), self._wp))
            if not self.keep_raw:
                self._we = self._wp = None
        return p

    def _raw_dropped(self):
        """Whether the raw 1x1 weights are gone: dropped at the first packing
        unless keep_raw."""
        return bool(self._packed) and not self.keep_raw

    def _run_isa(self, isa_id):
        """The ISA a call runs on: the one in force, or -- once the raw weights
        are dropped -- the one they were packed for (as a released Conv of
        leanconv.onnx keeps running the plan it packed)."""
        if isa_id in self._packed or not self._raw_dropped():
            return isa_id
        return next(iter(self._packed))

    def weights(self):
        """The arrays of weights the block holds now: the 1x1's packed copies
        (and its raw ones until they are dropped), the depthwise's, the biases."""
        held = [a for p in self._packed.values() for a in p if a is not None] + [self.wd]
        return held + [a for a in (self._we, self.be, self.bd, self._wp, self.bp)
                       if a is not None]

    @property
    def packed_bytes(self):
        return sum(a.nbytes for p in self._packed.values() for a in p if a is not None)

    def workspace_bytes(self, x_shape, threads=None):
        return max(0, self.info(x_shape, threads)["workspace_bytes"])

    def __call__(self, x, out=None, threads=None, residual=None):
        """y for x (N, C, H, W) float32, C-contiguous; into `out` when given.
        residual: added before the projection's activation (a block with a
        projection only), of the output's shape; it may be `out` itself."""
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise TypeError(f"InvertedResidual: x must be a float32 array, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        shape = self.output_shape(x.shape)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"InvertedResidual: out must be C-contiguous float32 {shape}")
        if 0 in x.shape:
            return out
        if np.shares_memory(x, out):
            raise ValueError("InvertedResidual: out must not overlap x")
        if residual is not None:
            if self.spec_p is None:
                raise ValueError("InvertedResidual: a residual needs the projection")
            if not isinstance(residual, np.ndarray) or residual.dtype != np.float32 or \
                    residual.shape != shape:
                raise ValueError(f"InvertedResidual: residual must be float32 {shape}")
            if residual is not out:
                if np.shares_memory(residual, out):
                    raise ValueError("InvertedResidual: residual must be out or apart from it")
                residual = np.ascontiguousarray(residual)
        args, ws = self._c_args(x.shape, threads)
        xs = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        _core.ir_block(xs.reshape(-1), out.reshape(-1), *args[:9], _scratch.lend(ws), *args[9:],
                       None if residual is None else residual.reshape(-1))
        return out

    def bind(self, x, out, threads=None, residual=None):
        """The call of __call__(x, out=out, threads=threads, residual=residual)
        fixed once with these buffers (a _core.BoundIRBlock, for a compiled
        schedule's C loop; it runs in the loop's workspace), or None where
        only __call__ can run it (buffers not C-contiguous float32 of the
        block's shapes, an empty input, a residual that is neither out nor
        apart from it)."""
        shape = self.output_shape(x.shape)
        arrays = (x, out) if residual is None else (x, out, residual)
        if any(not isinstance(a, np.ndarray) or a.dtype != np.float32 or
               not a.flags.c_contiguous for a in arrays) or out.shape != shape or \
                0 in x.shape or np.shares_memory(x, out) or \
                (residual is not None and (self.spec_p is None or residual.shape != shape or
                                           (residual is not out and
                                            np.shares_memory(residual, out)))):
            return None
        args, _ = self._c_args(x.shape, threads)
        return _core.BoundIRBlock(x.reshape(-1), out.reshape(-1), *args,
                                  None if residual is None else residual.reshape(-1))

    def _c_args(self, x_shape, threads):
        """(_core.ir_block's arguments from isa to bp but the workspace,
        workspace bytes) for inputs of x_shape."""
        isa_id = self._run_isa(_isa.isa_id())
        n = _threads.resolve(threads)
        key = (tuple(x_shape), isa_id, n)
        call = self._calls.get(key)
        if call is None:        # once per input shape, ISA and thread count, not per call
            ge, gd, gp = self.geometries(x_shape)
            call = self._calls[key] = (ge, gd, gp, _core.ir_block_info(isa_id, ge, gd, gp, n)
                                       ["workspace_bytes"])
        ge, gd, gp, ws = call
        if ws < 0:
            raise ValueError(f"InvertedResidual: the block cannot run on input {tuple(x_shape)} "
                             f"(its sizes overflow)")
        pe, pp = self.packed(isa_id)
        return (isa_id, ge, gd, None if self.spec_e is None else self.spec_e.epilogue,
                self.spec_d.epilogue, pe, self.be, self.wd,
                self.bd, n, gp, None if gp is None else self.spec_p.epilogue, pp, self.bp), ws


def _pack(isa_id, geometry, w):
    p = np.empty(_core.ir_block_packed_floats(isa_id, geometry), np.float32)
    _core.ir_block_pack(isa_id, geometry, w, p)
    return p


def _vector(b, n, name):
    if b is None:
        return None
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    if b.shape != (n,):
        raise ValueError(f"InvertedResidual: {name} must hold {n} floats, got {b.shape}")
    return b


def _dims(x_shape, C):
    if len(x_shape) != 4 or x_shape[1] != C:
        raise ValueError(f"InvertedResidual: input must be (N, {C}, H, W), got {tuple(x_shape)}")
    return tuple(int(v) for v in x_shape)

