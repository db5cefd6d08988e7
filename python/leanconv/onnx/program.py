"""The executable form of a graph: steps over named values, and per input
shape a compiled Schedule that runs them in one static arena.

A Step runs one (possibly fused) node.  Its facts for profilers, valid for
the schedule compiled last (`Program.schedule_for`):

    step.name            node name          step.label()   op types, "Conv+BatchNormalization+Relu"
    step.output_bytes    bytes it writes    step.packed_bytes    packed weights it owns (Conv)
    step.workspace_bytes scratch bytes one call allocates beyond its outputs

`Program.run(feeds, timings=list)` appends (step, seconds) for every step in
program order (0 for a step with no run-time work: folded, a view, a Concat
whose inputs were written in place)."""
from __future__ import annotations

import time

import numpy as np

from leanconv._heap import return_freed_memory


class Settings:
    """Per-prepared-model knobs the steps read at run time."""

    def __init__(self, algorithm="auto", threads=None, memory_budget=None):
        self.algorithm = algorithm
        self.threads = threads
        self.memory_budget = memory_budget   # bytes a run may hold, or None
        self.workspace = None   # the compiled schedule's scratch buffer, lent to every Conv


class Step:
    """fn(*inputs) -> tuple of outputs (fresh arrays or views).  Optional, for
    the compiled schedule: into(outs, *inputs) writes into preallocated outs
    (None for an output nobody reads); view: the outputs are views of input 0
    (Reshape, Flatten, ...: computed once per schedule, no run-time work);
    inplace: True (any input) or the indices of the inputs whose buffer output
    0 may take over when they die here with its shape; workspace(*inputs) -> scratch bytes of a call;
    held() -> the arrays of weights a fused step packed and holds itself (an SE block's, an
    inverted-residual block's): the memory plan counts them as packed weights, and a
    memory_budget sees them; bind(outs, *inputs) -> a _core.BoundCall for these buffers (or
    None): the compiled schedule then runs the step with no Python around its C call;
    shape_only(*inputs) -> outputs of the right shapes and dtypes (zeros), for the compile
    pass that learns shapes: a step whose fn computes in NumPy what `into` computes in C
    (Resize) is not run in NumPy on the data just to learn a shape."""
    __slots__ = ("op_type", "name", "inputs", "outputs", "fn", "conv", "free", "fused", "into",
                 "view", "inplace", "workspace", "output_bytes", "workspace_bytes", "blas",
                 "concat_axis", "held", "bind", "shape_only")

    def __init__(self, node, fn, inputs=None, conv=None, fused=(), into=None, view=False,
                 inplace=False, workspace=None, blas=False, held=None, bind=None,
                 shape_only=None):
        self.op_type = node.op_type
        self.name = node.name
        self.inputs = list(node.inputs if inputs is None else inputs)
        self.outputs = list(node.outputs)
        self.fn = fn
        self.conv = conv          # the ConvOp of a Conv step (for profiles)
        self.free = ()            # value names to drop after this step (interpreter)
        self.fused = tuple(fused)  # op types folded into this step (BatchNormalization, Relu, ...)
        self.into = into
        self.view = view
        self.inplace = inplace
        self.workspace = workspace
        self.blas = blas          # runs NumPy's BLAS: its pool is bounded by threads=
        self.output_bytes = 0
        self.workspace_bytes = 0
        self.concat_axis = None   # a Concat's axis: its inputs may be placed in its output
        self.held = held
        self.bind = bind
        self.shape_only = shape_only

    def run(self, values):
        args = [values[n] if n else None for n in self.inputs]
        outs = self.fn(*args)
        for name, v in zip(self.outputs, outs):
            if name:
                values[name] = v
        for name in self.free:
            values.pop(name, None)

    def label(self):
        return "+".join((self.op_type,) + self.fused)

    @property
    def packed_bytes(self):
        return self.conv.packed_bytes if self.conv is not None else 0


# The shape pass hands the heap's free pages back each time its freed values
# add up to this.  glibc keeps them (its mmap threshold risen past the values'
# 1-5 MB, every free hole's pages kept): Swin-T's TorchScript export grew the
# heap by 24 MB over stage 1 with 1-5 MB of values alive at any step, all of
# it above the memory plan, until prepare's trim after the pass.
_TRIM_EVERY = 8 << 20


class Program:
    def __init__(self, steps, constants, inputs, outputs, settings):
        self.steps = steps
        self.constants = constants   # name -> ndarray known at prepare time
        self.inputs = inputs         # [(name, dtype or None, rank or None)]
        self.outputs = outputs       # output names
        self.settings = settings
        self.initializer_names = frozenset()   # set by build_program, for error messages
        self.declared_shapes = {}    # input name -> static shape or None
        self._schedules = {}         # input signature -> Schedule
        self.schedule = None         # the one compiled last
        self.plannable = True        # False: shapes follow data values; run the interpreter
        self.release_when_packed = False   # set while prepare compiles (compile_declared)
        self._plan_liveness()

    def _plan_liveness(self):
        last = {}
        for i, s in enumerate(self.steps):
            for n in s.inputs:
                if n:
                    last[n] = i
        keep = set(self.outputs) | set(self.constants)
        frees = [[] for _ in self.steps]
        for n, i in last.items():
            if n not in keep:
                frees[i].append(n)
        for s, f in zip(self.steps, frees):
            s.free = tuple(f)

    def interpret(self, feeds, observe=None, shapes_only=False):
        """Run step by step over a dict of values, each output a fresh array
        freed after its last reader.  observe(step, args, outs) sees every step.
        shapes_only: Conv steps return zeros of their output's shape (nothing
        is packed or computed; other ops then see zeros), and so do steps with
        a shape_only form when an input comes from the data (values known
        without it -- constants, shapes and what follows from them alone --
        are computed)."""
        values = dict(self.constants)
        values.update(feeds)
        known = set(self.constants)
        freed = 0   # bytes of values freed since the heap was last trimmed
        for s in self.steps:
            if observe is None:
                s.run(values)
                continue
            args = [values[n] if n else None for n in s.inputs]
            if s.op_type == "Shape" or all(not n or n in known for n in s.inputs):
                known.update(s.outputs)
                data = False
            else:
                data = True
            if shapes_only and s.conv is not None:
                outs = s.conv.shape_only(*args)
            elif shapes_only and data and s.shape_only is not None:
                outs = s.shape_only(*args)
            else:
                outs = s.fn(*args)
            observe(s, args, outs)
            for name, v in zip(s.outputs, outs):
                if name:
                    values[name] = v
            for name in s.free:
                v = values.pop(name, None)
                if shapes_only and isinstance(v, np.ndarray) and v.flags.owndata:
                    freed += v.nbytes
            if freed >= _TRIM_EVERY:
                return_freed_memory()
                freed = 0
        missing = [n for n in self.outputs if n not in values]
        if missing:
            raise ValueError(f"graph outputs {missing} were never computed")
        return [values[n] for n in self.outputs]

    @staticmethod
    def signature(feeds):
        return tuple(sorted((k, v.shape, v.dtype.str) for k, v in feeds.items()))

    def schedule_for(self, feeds):
        """The compiled schedule for these inputs' shapes (compiled on first
        sight), or None when the program cannot be planned statically."""
        if not self.plannable:
            return None
        sig = self.signature(feeds)
        sched = self._schedules.get(sig)
        if sched is None:
            from leanconv.onnx.schedule import NotPlannable, Schedule
            try:
                sched = Schedule(self, feeds)
            except NotPlannable:
                self.plannable = False
                return None
            self._schedules[sig] = sched
            if not self.release_when_packed:   # (prepare does it after its trim)
                sched.back_with_huge_pages()
        if sched is not self.schedule:
            sched.publish()
            self.schedule = sched
        return sched

    def compile_declared(self):
        """Compile for the declared input shapes if they are all static (at
        prepare), so memory is planned before the first run.  Returns the
        schedule or None."""
        shapes = [self.declared_shapes.get(n) for n, _, _ in self.inputs]
        if any(s is None for s in shapes):
            return None
        if any(dt is None or not np.issubdtype(dt, np.floating) for _, dt, _ in self.inputs):
            return None   # zeros for integer inputs (indices, shapes) could mean anything
        feeds = {n: np.zeros(s, dtype=dt) for (n, dt, _), s in zip(self.inputs, shapes)}
        # what reading, checking and building the graph freed goes back first: the
        # largest layers' raw and packed copies (mapped, not carved from the heap)
        # would otherwise come on top of it (ShuffleNet: 1 MB of the peak)
        return_freed_memory()
        # prepare drops the raw weights after this compile anyway (release_weights):
        # dropping each as soon as it is packed keeps the in-memory ones (folded or
        # rewritten at prepare, not re-readable from the file) from piling up beside
        # the packed copies
        self.release_when_packed = True
        try:
            return self.schedule_for(feeds)
        finally:
            self.release_when_packed = False

    def run(self, feeds, timings=None):
        """feeds: name -> ndarray.  timings: optional list, gets (step, seconds)."""
        sched = self.schedule_for(feeds)
        if sched is not None:
            return sched.run(feeds, timings)
        from leanconv.onnx.schedule import blas_limit
        with blas_limit():
            return self.interpret(feeds, None if timings is None else _timer(timings))

    def release_weights(self):
        """Drop raw Conv weights whose packing no input shape can change."""
        for s in self.steps:
            if s.conv is not None:
                s.conv.release()

    def keeps_weight_sources(self):
        """Whether a Conv may still read its raw weights (packing at the first
        run, or again for another input size)."""
        return any(s.conv is not None and s.conv.keeps_weight_source for s in self.steps)


def _timer(timings):
    """An interpret() observer that cannot time steps (they run before it sees
    them): it records them with the time since the previous one."""
    last = [time.perf_counter()]

    def observe(step, args, outs):
        now = time.perf_counter()
        timings.append((step, now - last[0]))
        last[0] = now
    return observe


def timed(calls, timings):
    """Run (step, call) pairs, appending (step, seconds); a None call is a step
    with no run-time work (0 seconds)."""
    clock = time.perf_counter
    for step, call in calls:
        if call is None:
            timings.append((step, 0.0))
            continue
        t0 = clock()
        call()
        timings.append((step, clock() - t0))
