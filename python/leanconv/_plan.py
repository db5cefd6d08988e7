"""Plans (weights packed once) and the functional API on top of them."""
from __future__ import annotations

import threading
import numpy as np

from . import _core, _isa, _measure, _select, _threads, _wisdom
from ._epilogue import check_out, same_buffer
from ._params import ConvSpec, float32_array
from ._select import algorithm_id, check_name, why_unsupported


def _unsupported_error(name, why):
    return ValueError(f"algorithm {name!r} cannot run this convolution: {why}; "
                      f"use algorithm='auto'")


class Conv2d:
    """A convolution with its weights packed for one ISA.

        plan = lc.Conv2d(w, bias, stride=1, padding=1, algorithm="auto")
        y = plan(x)

    A named algorithm is packed at once and runs every input.  "auto",
    "winograd" and "measure" decide per input geometry (batch, height, width,
    threads) on first sight and remember the decision; "measure" times the
    candidates once per geometry and keeps the winner in the wisdom file
    (lc.wisdom_path()), which "auto" then follows too.  Packings are made as
    decisions need them and shared where layouts coincide (Im2Col and
    Patch2Vec pack alike; direct and depthwise read the plan's copy of the
    weights); at most `max_packings` are kept, least recently used first out.

    `input_shape` decides (and packs) for that shape at creation.
    `plan.algorithm` is the choice for the last geometry seen (or for
    input_shape); `plan.algorithm_for(x_shape)` answers for any shape without
    running; `plan.packed_bytes` is what the plan holds for its weights;
    `plan.workspace_bytes(x.shape)` what a call allocates beyond its output.
    The plan may be called from several Python threads at once (each call
    has its own workspace)."""

    max_packings = 2    # packed layouts a deciding plan keeps (LRU)

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                 algorithm="auto", activation=None, threads=None, input_shape=None):
        w = float32_array(weight, "weight")
        self.spec = ConvSpec.build(w.shape, stride, padding, dilation, groups, activation)
        self._bias = self._check_bias(bias, self.spec.M)
        self.isa = _isa.isa()
        self._isa_id = _isa.isa_id(self.isa)
        self.requested = check_name(algorithm)
        self.threads = None if threads is None else _threads.resolve(threads)
        self._lock = threading.RLock()  # one measurement per geometry at a time
        self._by_shape = {}  # x.shape -> its checked dims, geometry and output shape (_dims)
        if self.requested in _select.ALGORITHMS or self.requested == "winograd":
            # "winograd" needs a shape every Winograd size can run
            named = "winograd_f2" if self.requested == "winograd" else self.requested
            why = why_unsupported(named, self.spec, self._isa_id)
            if why is not None:
                raise _unsupported_error(self.requested, why)
        flat = w.reshape(-1)
        if self.requested in _select.ALGORITHMS:
            self._weights = None  # packed at once, the caller's array not kept
            self._op = self._operator(algorithm_id(self.requested), flat, borrow=False)
        else:
            # packings are made later, from a copy the caller cannot change
            self._weights = np.array(flat, dtype=np.float32, copy=True)
            self._op = self._operator(_select.request_id(self.requested), self._weights,
                                      borrow=True)
            if input_shape is not None:
                N, C, H, W, _ = self.spec.input_dims(input_shape)
                t = self._threads_for(None)
                a = self._algorithm(N, H, W, self.spec.geometry(N, C, H, W), t)
                self._op.setup(N, H, W, t, a).release()  # packs now

    def _operator(self, request, flat_weights, borrow):
        return _core.Op(request, self._isa_id, flat_weights, self._bias,
                        _select.filter_geometry(self.spec), self.spec.epilogue,
                        self.max_packings, borrow)

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

    # ---- decisions (the C operator remembers them) -------------------------

    def _algorithm(self, N, H, W, geometry, threads, measure=True):
        """The algorithm id for this geometry: the operator's decision, made
        on first sight from the wisdom file, a measurement ("measure", unless
        `measure` is False: then a guess the first call replaces) or the C
        cost model."""
        a = self._op.decided(N, H, W, threads)
        if a >= 0:
            return a
        with self._lock:
            a = self._op.decided(N, H, W, threads)
            if a >= 0:
                return a
            name = None
            if self.requested in ("auto", "measure"):
                name = _wisdom.lookup(_core.ISA_NAMES[self._isa_id], threads, self.spec, geometry)
            if name is None and self.requested == "measure":
                if not measure:  # a guess, not a decision: the first call measures
                    return self._op.decide(N, H, W, threads, -1, False)[0]
                name = self._measured(N, H, W, geometry, threads)
            return self._op.decide(N, H, W, threads, -1 if name is None else algorithm_id(name))[0]

    @property
    def _kernel(self):
        """The operator of a plan of a named algorithm (leanconv.torch.freeze
        runs it directly: .run(x, y, bias, geometry, threads, residual))."""
        if self._weights is not None:
            raise AttributeError("a plan that decides per input geometry has no single kernel")
        return self._op

    def _measured(self, N, H, W, geometry, threads):
        """Wisdom's winner for this geometry, else measure and record one
        (the winner's packing is kept)."""
        isa = _core.ISA_NAMES[self._isa_id]
        k = _wisdom.key(isa, threads, self.spec, geometry)
        with _wisdom.measuring(k):
            known = _wisdom.lookup(isa, threads, self.spec, geometry)
            if known is not None:
                return known
            setups, runners = self._candidates(N, H, W, geometry, threads)
            try:
                winner, medians = _measure.fastest(runners, single_thread=threads == 1)
                _wisdom.record(k, winner, {a: t * 1e3 for a, t in medians.items()})
                self._op.setup(N, H, W, threads, algorithm_id(winner)).release()  # kept
            finally:
                for s in setups:
                    s.release()
            return winner

    def _candidates(self, N, H, W, geometry, threads):
        """([setups held], {algorithm: a call of it on a random input of this
        geometry}) for every algorithm that can run it; the naive direct
        algorithm is the reference, a candidate only when nothing else runs."""
        C, OH, OW = geometry[1], geometry[7], geometry[8]
        rng = np.random.default_rng(0)
        x = rng.standard_normal(N * C * H * W, dtype=np.float32)
        y = np.empty(N * self.spec.M * OH * OW, np.float32)
        names = [a for a in _select.supported(self.spec, self._isa_id, geometry) if a != "direct"]
        setups, runners = [], {}
        for name in names or ["direct"]:
            s = self._op.setup(N, H, W, threads, algorithm_id(name), remember=False)
            setups.append(s)
            runners[name] = (lambda s=s: s.run(x, y))
        return setups, runners

    # ---- the public face --------------------------------------------------

    @property
    def algorithm(self) -> str:
        """The algorithm of the last geometry seen (or of input_shape); before
        any call, what a call on an input of output size 28 x 28 would use."""
        if self._op.algorithm >= 0:
            return _select.ALGORITHMS[self._op.algorithm]
        H, W = _select.assumed_input_hw(self.spec)
        return self.algorithm_for((1, self.spec.C, H, W))

    def algorithm_for(self, x_shape, threads=None) -> str:
        """The algorithm a call on this input shape would use, without running
        one.  For "measure" on a geometry not measured yet: the wisdom file's
        entry, else the cost model's guess (the first call then measures)."""
        if self._weights is None:
            return self.requested
        N, C, H, W, _ = self.spec.input_dims(x_shape)
        geometry = self.spec.geometry(N, C, H, W)
        return _select.ALGORITHMS[self._algorithm(N, H, W, geometry, self._threads_for(threads),
                                                  measure=False)]

    @property
    def packed_bytes(self) -> int:
        """Bytes the plan holds for its weights: its packings and, for a plan
        that decides per geometry, the copy of the weights it packs from."""
        return self._op.packed_bytes + (0 if self._weights is None else self._weights.nbytes)

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
        t = self._threads_for(threads)
        N, C, H, W, _ = self.spec.input_dims(x_shape)
        geom = self.spec.geometry(N, C, H, W)
        a = self._algorithm(N, H, W, geom, t, measure=False)
        _, ws = self._op.decide(N, H, W, t, a, False)
        if ws < 0:
            raise ValueError(f"workspace for input {tuple(x_shape)} does not fit in 64 bits")
        return ws

    def __call__(self, x, out=None, *, residual=None, threads=None, workspace=None):
        """y = act(conv(x) + bias + residual).  `residual` (optional) is a
        float32 array of exactly the output's shape (a non-contiguous one is
        copied first); `out=residual` -- the very same array -- accumulates in
        place.  Any other overlap of out with x, residual or the bias is an
        error.  `workspace` (optional): a 64-byte aligned uint8 array of at
        least workspace_bytes(x.shape) the call uses instead of allocating its
        own (an executor's one scratch buffer for all its layers)."""
        return self._run(x, out, threads, self._bias, residual, workspace)

    def bind(self, x, out, *, residual=None, threads=None):
        """The call self(x, out, residual=residual, threads=threads) fixed
        once, for an executor that reuses the same buffers: a
        _core.BoundConv (run it with _core.run_bound, which lends it the
        executor's workspace).  x, out and residual must be C-contiguous
        native float32 arrays that stay where they are."""
        if out is None:
            raise ValueError("bind: out is required (the buffer the bound call writes)")
        for name, a in (("x", x), ("out", out), ("residual", residual)):
            if a is not None and not (isinstance(a, np.ndarray) and a.dtype == np.float32 and
                                      a.dtype.isnative and a.flags.c_contiguous):
                raise ValueError(f"bind: {name} must be a C-contiguous native float32 array")
        return self._run(x, out, threads, self._bias, residual, bind=True)

    def _dims(self, x_shape):
        """(N, H, W, geometry, output shape) of an input shape: checked and
        worked out once per shape (a call of a small layer is a few us, and
        these checks were a third of its Python time)."""
        got = self._by_shape.get(x_shape)
        if got is None:
            N, C, H, W, batched = self.spec.input_dims(x_shape)
            geom = self.spec.geometry(N, C, H, W)
            OH, OW = geom[7], geom[8]
            shape = (N, self.spec.M, OH, OW) if batched else (self.spec.M, OH, OW)
            got = (N, H, W, geom, shape)
            if len(self._by_shape) >= 64:  # bounded: a caller cycling through shapes
                self._by_shape.clear()
            self._by_shape[x_shape] = got
        return got

    def _run(self, x, out, threads, bias, residual, workspace=None, bind=False):
        x = float32_array(x, "x")
        N, H, W, geom, shape = self._dims(x.shape)
        res = self._residual(residual, shape)
        y = self._output(out, shape, x, res, bias)
        t = self._threads_for(threads)
        a = self._algorithm(N, H, W, geom, t) if self._weights is not None else -1
        if bind:
            return _core.BoundConv(self._op.setup(N, H, W, t, a), x.reshape(-1), y.reshape(-1),
                                   bias, None if res is None else res.reshape(-1))
        if workspace is not None:
            check_workspace(workspace, x, y, res)
        self._op.run(x.reshape(-1), y.reshape(-1), bias, geom, t,
                     None if res is None else res.reshape(-1), a, workspace)
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

    def _output(self, out, shape, x, res, bias):
        if out is None:
            return np.empty(shape, dtype=np.float32)
        if not isinstance(out, np.ndarray):
            raise ValueError(f"out must be a numpy array, got {type(out).__name__}")
        check_out(out, shape, [])
        if np.shares_memory(out, x):
            raise ValueError("out overlaps the input x; leanconv does not convolve in place")
        if bias is not None and np.shares_memory(out, bias):
            raise ValueError("out overlaps the bias")
        if res is not None and np.shares_memory(out, res) and not same_buffer(out, res):
            raise ValueError("out overlaps residual without being the same array; pass "
                             "out=residual (the very same array) to accumulate in place")
        return out

    def __repr__(self):
        s = self.spec
        return (f"leanconv.Conv2d(M={s.M}, C={s.C}, kernel={s.kH}x{s.kW}, stride={s.stride}, "
                f"pads={s.pads}, dilation={s.dilation}, groups={s.groups}, "
                f"algorithm={self.requested!r}, isa={self.isa!r})")


def check_workspace(workspace, *arrays):
    """A lent workspace: a writable C-contiguous 1-D uint8 array apart from the
    call's arrays (_core.Op.run checks its alignment and uses it if large enough)."""
    if not (isinstance(workspace, np.ndarray) and workspace.dtype == np.uint8 and
            workspace.ndim == 1 and workspace.flags.c_contiguous and workspace.flags.writeable):
        raise TypeError("workspace must be a writable 1-D C-contiguous uint8 numpy array, got "
                        + (f"{workspace.dtype} of shape {workspace.shape}"
                           if isinstance(workspace, np.ndarray) else type(workspace).__name__))
    if any(a is not None and np.may_share_memory(workspace, a) for a in arrays):
        raise ValueError("workspace overlaps the input, the output or the residual")


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
    accumulates in place.
    Plans are cached per weight array (see _plan_cache.py): repeated calls
    with the same weights do not repack them."""
    from . import _plan_cache
    x = float32_array(x, "x")
    if isinstance(out, np.ndarray) and isinstance(bias, np.ndarray) and np.shares_memory(out, bias):
        raise ValueError("out overlaps the bias; pass a bias that does not share out's memory")
    plan = _plan_cache.plan_for(weight, stride, padding, dilation, groups, algorithm,
                                activation)
    b = Conv2d._check_bias(bias, plan.spec.M)
    return plan._run(x, out, threads, b, residual)


def workspace_bytes(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, *,
                    algorithm="auto", threads=None) -> int:
    """Exact bytes conv2d allocates beyond its output for these shapes."""
    spec = ConvSpec.build(w_shape, stride, padding, dilation, groups)
    N, C, H, W, _ = spec.input_dims(x_shape)
    geom = spec.geometry(N, C, H, W)
    isa_id = _isa.isa_id()
    t = _threads.resolve(threads)
    check_name(algorithm)
    name = _select.resolve(algorithm, spec, isa_id, geom, t)
    why = why_unsupported(name, spec, isa_id)
    if why is not None:
        raise _unsupported_error(name, why)
    _, ws = _core.sizes(algorithm_id(name), isa_id, geom, t)
    if ws < 0:
        raise ValueError(f"workspace for input {tuple(x_shape)} does not fit in 64 bits")
    return ws


def supports(algorithm, x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1) -> bool:
    """Can `algorithm` run this convolution?  (False for an invalid shape too.)"""
    try:
        spec = ConvSpec.build(w_shape, stride, padding, dilation, groups)
        N, C, H, W, _ = spec.input_dims(x_shape)
        geom = spec.geometry(N, C, H, W)
        isa_id = _isa.isa_id()
        check_name(algorithm)
        name = _select.resolve(algorithm, spec, isa_id, geom, _threads.get_num_threads())
    except (TypeError, ValueError):
        return False
    return why_unsupported(name, spec, isa_id) is None
