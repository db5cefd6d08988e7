"""An inverted-residual block's expanding 1x1 convolution and the depthwise
convolution after it as one call (kernels/ir_block.c), for the adapters'
rewrites (leanconv.onnx's ir_block.py, leanconv.torch.freeze's):

    y = act_d(depthwise(act_e(conv1x1(x, We) + be), Wd) + bd)

computed band by band of output rows, so the expanded tensor never goes to
memory.  Whether fusing pays is the C side's rule (the expanded tensor
would not stay in one core's L2 between two steps: lc_ir_block_pays); `pays()`
asks it for an input shape."""
from __future__ import annotations

import numpy as np

from leanconv import _core, _isa, _scratch, _threads
from leanconv._params import ConvSpec


def fusion_info(we_shape, wd_shape, stride, pads, dilation, x_shape, threads=None):
    """ir_block_info's dict (why, band_rows, pays, packed_floats,
    workspace_bytes) for a block of these weight shapes on inputs of x_shape,
    with no weights at hand (the rewrites decide before loading them)."""
    E, C = we_shape[:2]
    if len(x_shape) != 4 or x_shape[1] != C or tuple(wd_shape[:2]) != (E, 1):
        return {"why": "the shapes do not make such a block", "pays": False}
    spec_e = ConvSpec.build(tuple(we_shape), 1, 0, 1, 1)
    spec_d = ConvSpec.build(tuple(wd_shape), stride, pads, dilation, E)
    N, _, H, W = x_shape
    return _core.ir_block_info(_isa.isa_id(), spec_e.geometry(N, C, H, W),
                               spec_d.geometry(N, E, H, W), _threads.resolve(threads))


class InvertedResidual:
    """we (E, C, 1, 1), be (E) or None, act_e; wd (E, 1, kH, kW), bd (E) or
    None, act_d; the depthwise's stride, pads (top, bottom, left, right) and
    dilation.  Activations as leanconv's `activation=` (None, "relu",
    ("clamp", 0, 6), ...).  The 1x1's weights are packed per ISA on first
    use; the raw ones are dropped then, unless keep_raw (another ISA may
    need them)."""

    def __init__(self, we, be, act_e, wd, bd, act_d, stride, pads, dilation, keep_raw=False):
        we = np.asarray(we)
        wd = np.asarray(wd)
        if we.dtype != np.float32 or wd.dtype != np.float32:
            raise TypeError(f"InvertedResidual: weights must be float32, got {we.dtype} and "
                            f"{wd.dtype}")
        if we.ndim != 4 or we.shape[2:] != (1, 1):
            raise ValueError(f"InvertedResidual: we must be (E, C, 1, 1), got {we.shape}")
        E, C = we.shape[:2]
        if wd.ndim != 4 or wd.shape[:2] != (E, 1):
            raise ValueError(f"InvertedResidual: wd must be ({E}, 1, kH, kW), got {wd.shape}")
        self.spec_e = ConvSpec.build(we.shape, 1, 0, 1, 1, act_e)
        self.spec_d = ConvSpec.build(wd.shape, stride, pads, dilation, E, act_d)
        self.E, self.C = E, C
        self._we = np.ascontiguousarray(we).reshape(-1)
        self.be = _vector(be, E, "be")
        self.wd = np.ascontiguousarray(wd).reshape(-1)
        self.bd = _vector(bd, E, "bd")
        self._packed = {}   # ISA id -> packed 1x1 weights
        self._calls = {}    # (input shape, ISA id, threads) -> (geometries, workspace bytes)
        self.keep_raw = keep_raw

    def geometries(self, x_shape):
        """(the 1x1's, the depthwise's) geometry tuples for input x_shape."""
        N, C, H, W = _dims(x_shape, self.C)
        return self.spec_e.geometry(N, C, H, W), self.spec_d.geometry(N, self.E, H, W)

    def output_shape(self, x_shape):
        N, _, H, W = _dims(x_shape, self.C)
        return (N, self.E) + self.spec_d.output_hw(H, W)

    def info(self, x_shape, threads=None, isa_id=None):
        """ir_block_info's dict (why, band_rows, pays, packed_floats,
        workspace_bytes) for inputs of x_shape."""
        ge, gd = self.geometries(x_shape)
        return _core.ir_block_info(_isa.isa_id() if isa_id is None else isa_id, ge, gd,
                                   _threads.resolve(threads))

    def pays(self, x_shape, threads=None):
        i = self.info(x_shape, threads)
        return i["why"] is None and i["pays"]

    def packed(self, isa_id):
        """The 1x1's weights packed for ISA isa_id (the raw ones are dropped
        after the first packing unless keep_raw)."""
        p = self._packed.get(isa_id)
        if p is None:
            if self._we is None:
                raise RuntimeError(f"InvertedResidual: packed for ISA id(s) {sorted(self._packed)}"
                                   f" and the raw weights were dropped; prepare again to run "
                                   f"under ISA id {isa_id}")
            ge = self.spec_e.geometry(1, self.C, 1, 1)
            p = np.empty(_core.ir_block_packed_floats(isa_id, ge), np.float32)
            _core.ir_block_pack(isa_id, ge, self._we, p)
            self._packed[isa_id] = p
            if not self.keep_raw:
                self._we = None
        return p

    def _run_isa(self, isa_id):
        """The ISA a call runs on: the one in force, or -- once the raw weights
        are dropped -- the one they were packed for (as a released Conv of
        leanconv.onnx keeps running the plan it packed)."""
        if isa_id in self._packed or self._we is not None:
            return isa_id
        return next(iter(self._packed))

    def weights(self):
        """The arrays of weights the block holds now: the 1x1's packed copies
        (and its raw ones until they are dropped), the depthwise's, the biases."""
        held = list(self._packed.values()) + [self.wd]
        return held + [a for a in (self._we, self.be, self.bd) if a is not None]

    @property
    def packed_bytes(self):
        return sum(p.nbytes for p in self._packed.values())

    def workspace_bytes(self, x_shape, threads=None):
        return max(0, self.info(x_shape, threads)["workspace_bytes"])

    def __call__(self, x, out=None, threads=None):
        """y for x (N, C, H, W) float32, C-contiguous; into `out` when given."""
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
        isa_id = self._run_isa(_isa.isa_id())
        n = _threads.resolve(threads)
        key = (x.shape, isa_id, n)
        call = self._calls.get(key)
        if call is None:        # once per input shape, ISA and thread count, not per call
            ge, gd = self.geometries(x.shape)
            call = self._calls[key] = (ge, gd, _core.ir_block_info(isa_id, ge, gd, n)
                                       ["workspace_bytes"])
        ge, gd, ws = call
        if ws < 0:
            raise ValueError(f"InvertedResidual: the block cannot run on input {x.shape} "
                             f"(its sizes overflow)")
        xs = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        _core.ir_block(xs.reshape(-1), out.reshape(-1), isa_id, ge, gd, self.spec_e.epilogue,
                       self.spec_d.epilogue, self.packed(isa_id), self.be, self.wd, self.bd,
                       _scratch.lend(ws), n)
        return out


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

