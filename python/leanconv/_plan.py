"""Plans (weights packed once) and the functional API on top of them."""
from __future__ import annotations

import numpy as np

from . import _core, _isa, _threads
from ._epilogue import check_out, same_buffer
from ._params import ConvSpec, float32_array
from ._select import algorithm_id, choose, why_unsupported


def _unsupported_error(name, why):
    return ValueError(f"algorithm {name!r} cannot run this convolution: {why}; "
                      f"use algorithm='auto'")


class Conv2d:
    """A convolution with its weights packed once for one algorithm and ISA.

        plan = lc.Conv2d(w, bias, stride=1, padding=1, algorithm="auto")
        y = plan(x)

    `input_shape` (the shape of the inputs it will see) lets "auto" and
    "winograd" pick for that size.  `plan.algorithm` is the algorithm picked, `plan.packed_bytes` what the
    packed weights hold, `plan.workspace_bytes(x.shape)` what a call
    allocates beyond its output.  The plan may be called from several Python
    threads at once (each call has its own workspace)."""

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                 algorithm="auto", activation=None, threads=None, input_shape=None):
        w = float32_array(weight, "weight")
        self.spec = ConvSpec.build(w.shape, stride, padding, dilation, groups, activation)
        self._bias = self._check_bias(bias, self.spec.M)
        self.isa = _isa.isa()
        self._isa_id = _isa.isa_id(self.isa)
        # "auto" and "winograd" choose per input size when they know it; without
        # it they assume a mid-sized (28 x 28) output
        hw = None if input_shape is None else self.spec.input_dims(input_shape)[2:4]
        self.algorithm = choose(algorithm, self.spec, self._isa_id, hw)
        why = why_unsupported(self.algorithm, self.spec, self._isa_id)
        if why is not None:
            raise _unsupported_error(self.algorithm, why)
        self.threads = None if threads is None else _threads.resolve(threads)
        geom = (1, self.spec.C, self.spec.kH, self.spec.kW) + \
            (self.spec.M, self.spec.kH, self.spec.kW, 1, 1) + self.spec.stride + \
            self.spec.dilation + self.spec.pads + (self.spec.groups,)
        self._kernel = _core.Kernel(algorithm_id(self.algorithm), self._isa_id,
                                    w.reshape(-1), geom, self.spec.epilogue)

    @staticmethod
    def _check_bias(bias, M):
        """The plan's own copy of the bias: like the weights, changing the
        caller's array after the plan is made changes nothing."""
        if bias is None:
            return None
        b = float32_array(bias, "bias")
        if b.shape != (M,):
            raise ValueError(f"bias must have shape ({M},), got {b.shape}")
        return b.copy()

    @property
    def packed_bytes(self) -> int:
        return self._kernel.packed_bytes

    def output_shape(self, x_shape):
        N, C, H, W, batched = self.spec.input_dims(x_shape)
        OH, OW = self.spec.output_hw(H, W)
        return (N, self.spec.M, OH, OW) if batched else (self.spec.M, OH, OW)

    def _threads_for(self, threads):
        if threads is not None:
            return _threads.resolve(threads)
        return self.threads if self.threads is not None else _threads.get_num_threads()

    def workspace_bytes(self, x_shape, threads=None) -> int:
        """Exact bytes a call on this input shape allocates beyond its output."""
        N, C, H, W, _ = self.spec.input_dims(x_shape)
        geom = self.spec.geometry(N, C, H, W)
        _, ws = _core.sizes(algorithm_id(self.algorithm), self._isa_id, geom,
                            self._threads_for(threads))
        if ws < 0:
            raise ValueError(f"workspace for input {tuple(x_shape)} does not fit in 64 bits")
        return ws

    def __call__(self, x, out=None, *, residual=None, threads=None):
        """y = act(conv(x) + bias + residual).  `residual` (optional) is a
        float32 array of exactly the output's shape (a non-contiguous one is
        copied first); `out=residual` -- the very same array -- accumulates in
        place.  Any other overlap of out with x, residual or the bias is an
        error."""
        x = float32_array(x, "x")
        N, C, H, W, batched = self.spec.input_dims(x.shape)
        geom = self.spec.geometry(N, C, H, W)
        OH, OW = geom[7], geom[8]
        shape = (N, self.spec.M, OH, OW) if batched else (self.spec.M, OH, OW)
        res = self._residual(residual, shape)
        y = self._output(out, shape, x, res)
        self._kernel.run(x.reshape(-1), y.reshape(-1), self._bias, geom,
                         self._threads_for(threads), None if res is None else res.reshape(-1))
        return y

    @staticmethod
    def _residual(residual, shape):
        if residual is None:
            return None
        if not isinstance(residual, np.ndarray):
            raise TypeError(f"residual must be a numpy array, got {type(residual).__name__}")
        if residual.shape != shape:
            raise ValueError(f"residual must have the output's shape {shape}, "
                             f"got {residual.shape}")
        return float32_array(residual, "residual")  # dtype checked, big-endian converted

    def _output(self, out, shape, x, res):
        if out is None:
            return np.empty(shape, dtype=np.float32)
        if not isinstance(out, np.ndarray):
            raise ValueError(f"out must be a numpy array, got {type(out).__name__}")
        check_out(out, shape, [])
        if np.shares_memory(out, x):
            raise ValueError("out overlaps the input x; leanconv does not convolve in place")
        if self._bias is not None and np.shares_memory(out, self._bias):
            raise ValueError("out overlaps the bias")
        if res is not None and np.shares_memory(out, res) and not same_buffer(out, res):
            raise ValueError("out overlaps residual without being the same array; pass "
                             "out=residual (the very same array) to accumulate in place")
        return out

    def __repr__(self):
        s = self.spec
        return (f"leanconv.Conv2d(M={s.M}, C={s.C}, kernel={s.kH}x{s.kW}, stride={s.stride}, "
                f"pads={s.pads}, dilation={s.dilation}, groups={s.groups}, "
                f"algorithm={self.algorithm!r}, isa={self.isa!r})")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", activation=None, residual=None, out=None, threads=None):
    """y = act(conv2d(x, w) + bias + residual): torch.nn.functional.conv2d
    semantics, float32 NumPy, with the activation and residual add fused.

    x: (N, C, H, W) or (C, H, W); weight: (M, C/groups, kH, kW); bias: (M,).
    padding: int, pair, (top, bottom, left, right), 'valid' or 'same'.
    activation: see leanconv._epilogue (None, 'relu', 'relu6', ('clamp', lo, hi),
    'sigmoid', 'tanh', 'silu', 'gelu', 'gelu_tanh', 'hardswish', 'hardsigmoid',
    ('hardsigmoid', alpha, beta), ('leaky_relu', slope)).
    residual: None or a float32 array of the output's shape; out=residual
    accumulates in place."""
    x = float32_array(x, "x")
    w = float32_array(weight, "weight")
    spec = ConvSpec.build(w.shape, stride, padding, dilation, groups, activation)
    _, _, H, W, _ = spec.input_dims(x.shape)
    if isinstance(out, np.ndarray) and isinstance(bias, np.ndarray) and np.shares_memory(out, bias):
        raise ValueError("out overlaps the bias; pass a bias that does not share out's memory")
    plan = Conv2d(w, bias, stride, padding, dilation, groups, algorithm=algorithm,
                  activation=activation, threads=threads, input_shape=x.shape)
    return plan(x, out=out, residual=residual)


def workspace_bytes(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, *,
                    algorithm="auto", threads=None) -> int:
    """Exact bytes conv2d allocates beyond its output for these shapes."""
    spec = ConvSpec.build(w_shape, stride, padding, dilation, groups)
    N, C, H, W, _ = spec.input_dims(x_shape)
    geom = spec.geometry(N, C, H, W)
    isa_id = _isa.isa_id()
    name = choose(algorithm, spec, isa_id, (H, W))
    why = why_unsupported(name, spec, isa_id)
    if why is not None:
        raise _unsupported_error(name, why)
    _, ws = _core.sizes(algorithm_id(name), isa_id, geom, _threads.resolve(threads))
    if ws < 0:
        raise ValueError(f"workspace for input {tuple(x_shape)} does not fit in 64 bits")
    return ws


def supports(algorithm, x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1) -> bool:
    """Can `algorithm` run this convolution?  (False for an invalid shape too.)"""
    try:
        spec = ConvSpec.build(w_shape, stride, padding, dilation, groups)
        N, C, H, W, _ = spec.input_dims(x_shape)
        spec.geometry(N, C, H, W)
        isa_id = _isa.isa_id()
        name = choose(algorithm, spec, isa_id, (H, W))
    except (TypeError, ValueError):
        return False
    return why_unsupported(name, spec, isa_id) is None
