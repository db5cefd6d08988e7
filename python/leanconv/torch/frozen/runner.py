"""The call of a frozen graph: one precompiled schedule over a static
activation arena (program.py, compiled by leanconv.onnx's Schedule) where
it applies, else the GraphModule's own fx code.

A schedule is compiled for the example input's shapes when the model is
frozen, and for another input signature the second time it is seen (a
shape seen once runs the fx code, which allocates as it goes); at most
MAX_SCHEDULES are kept, each with its own arena, the least recently used
dropped first.  What a call returns never aliases the arena: the schedule
copies its outputs out (the next call overwrites the arena).

The fx code runs instead for: torch.compile/export tracing, TorchScript
tracing, autocast, inputs that are not plain CPU tensors (or need grad),
keyword arguments, a graph build() refused, and a call made while another
thread runs the schedule (the arena is one per schedule; that call is as
fast as before, not blocked).  The graph is compiled anew if someone edits
and recompiles the GraphModule."""
from __future__ import annotations

import collections
import threading
import types

import torch
from torch.nn.modules import module as _torch_module
from torch.utils import _pytree as pytree

from leanconv._heap import return_freed_memory
from leanconv.torch.frozen import program as program_mod
from leanconv.torch.frozen import threads

MAX_SCHEDULES = 4
MAX_SEEN = 64

# torch dtypes NumPy holds the same way (torch.from_numpy / .numpy() are views)
_NUMPY_DTYPES = frozenset({torch.float32, torch.float64, torch.float16, torch.int64,
                           torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool})


def _forward(self, *args, **kwargs):
    """A frozen GraphModule's forward (bound to the instance: its class's
    forward stays the fx code).  A plain function, so that torch.compile
    traces it like the fx code it then calls."""
    if torch.compiler.is_compiling():
        return type(self).forward(self, *args, **kwargs)
    return self._lc_scheduled(*args, **kwargs)


class ScheduledForward:
    """The call of a frozen GraphModule: its schedules and the fallback to
    its fx code."""

    def __init__(self, gm):
        from leanconv.onnx.program import Settings   # (the executor; it needs no onnx package)
        self.gm = gm
        self._code = gm._code
        self.settings = Settings(threads=threads.frozen_threads())
        built = program_mod.build(gm, self.settings)
        self.built = built if isinstance(built, program_mod.Built) else None
        self.why = None if self.built is not None else built   # why the fx code runs
        self.schedules = collections.OrderedDict()   # input signature -> Schedule
        self.seen = set()                            # signatures seen once
        self.failed = set()                          # signatures the plan refused
        self.lock = threading.Lock()

    def eager(self, *args, **kwargs):
        return type(self.gm).forward(self.gm, *args, **kwargs)

    def _signature(self, args):
        """The schedule key of these call arguments, or None when they are not
        plain CPU tensors of NumPy's dtypes in the number the graph takes."""
        if len(args) != len(self.built.inputs):
            return None
        key = []
        for a in args:
            if type(a) is not torch.Tensor or a.requires_grad or a.device.type != "cpu" or \
                    a.dtype not in _NUMPY_DTYPES:
                return None
            key.append((a.shape, a.dtype))
        return tuple(key)

    def compile(self, args):
        """Compile (and keep) the schedule for these arguments; None when the
        graph cannot be planned for them (the fx code runs them)."""
        from leanconv.onnx.schedule import Schedule
        key = self._signature(args)
        if key is None:
            return None
        feeds = {n: a.numpy() for n, a in zip(self.built.inputs, args)}
        self.settings.threads = threads.frozen_threads()
        try:
            with torch.no_grad():
                sched = Schedule(self.built.program, feeds)
        except Exception as e:  # noqa: BLE001 - NotPlannable, Refused, or an op that fails on
            # the plan's run (zeros for conv outputs): the fx code runs, and reports a real error
            self.why = f"{type(e).__name__}: {e}"
            self.failed.add(key)    # not tried again
            return None
        unfolded = self.built.non_tensor - set(sched.folded)
        if unfolded:
            self.why = f"values that are not tensors follow the data: {sorted(unfolded)}"
            return None
        self.schedules[key] = sched
        while len(self.schedules) > MAX_SCHEDULES:
            self.schedules.popitem(last=False)
        return_freed_memory()   # the compile run's activations
        sched.back_with_huge_pages()   # after the trim, which would split them (as prepare)
        return sched

    def __call__(self, *args, **kwargs):
        ready = self._ready(args, kwargs)
        if ready is not None and all(lent for _, lent in ready[1]._fns):
            # only leanconv's C calls run (one bound group, no torch op between
            # them): torch's thread setting needs no lowering for the call, and
            # nothing reads it (threads.enter and leave took 13 + 9 us of the
            # ~80 us of Python around a MobileNetV2 224 run at 2 threads, load
            # 4.8: each torch call is slow once the run has evicted the
            # interpreter from the caches)
            return self._run(ready, args)
        owner = threads.enter(self.gm)     # torch on one thread during the call
        try:
            return self._call(args, kwargs, ready)
        finally:
            if owner:
                threads.leave()

    def _ready(self, args, kwargs):
        """(signature, schedule) of a call a compiled schedule runs, else None:
        the fx code runs it, or its schedule is not compiled yet."""
        if not self._plannable(kwargs):
            return None
        key = self._signature(args)
        sched = None if key is None else self.schedules.get(key)
        return None if sched is None else (key, sched)

    def _plannable(self, kwargs):
        """Whether a schedule may run a call with these keyword arguments now
        (not: keywords, no graph built, an edited graph, tracing, autocast)."""
        return not (kwargs or self.built is None or self.gm._code is not self._code or
                    torch._C._get_tracing_state() or torch.is_autocast_enabled("cpu"))

    def _call(self, args, kwargs, ready):
        if ready is None:
            if not self._plannable(kwargs):
                return self._fallback(*args, **kwargs)
            key = self._signature(args)
            sched = self._first_sight(key, args)
            if sched is None:
                return self.eager(*args)
            ready = (key, sched)
        return self._run(ready, args)

    def _run(self, ready, args):
        key, sched = ready
        built = self.built
        if not self.lock.acquire(blocking=False):
            return self._eager_owned(*args)      # another thread is in this arena
        grad = torch.is_grad_enabled()
        try:
            if len(self.schedules) > 1:
                self.schedules.move_to_end(key)
            self.settings.threads = threads.frozen_threads()
            if grad:       # (a no_grad context costs ~3 us a call)
                torch._C._set_grad_enabled(False)
            outs = sched.run(dict(zip(built.inputs, [a.numpy() for a in args])))
        except program_mod.ShapeChanged:
            del self.schedules[key]     # shapes follow the data: never planned again
            self.built = None
            self.why = "a step's output shape follows the input's values"
            return self._eager_owned(*args)
        finally:
            if grad:
                torch._C._set_grad_enabled(True)
            self.lock.release()
        if built.single:
            return torch.from_numpy(outs[0])
        return pytree.tree_unflatten([torch.from_numpy(o) for o in outs], built.out_spec)

    def _eager_owned(self, *args):
        """The fx code with torch's ops on one thread (a call that skipped
        threads.enter, as __call__ does for a schedule of C calls only)."""
        owner = threads.enter(self.gm)
        try:
            return self.eager(*args)
        finally:
            if owner:
                threads.leave()

    def _first_sight(self, key, args):
        """The schedule for an input signature not compiled: compiled the second
        time it is seen, else None (the fx code runs)."""
        if key is None or key in self.failed:
            return None
        if key not in self.seen:
            if len(self.seen) >= MAX_SEEN:
                self.seen.clear()   # (inputs of ever new shapes: forget, not grow)
            self.seen.add(key)
            return None
        if not self.lock.acquire(blocking=False):
            return None
        try:
            return self.compile(args)
        finally:
            self.lock.release()

    def _fallback(self, *args, **kwargs):
        if self.gm._code is not self._code and not torch.compiler.is_compiling():
            self.__init__(self.gm)   # the graph was edited: plan the new one
        return self.eager(*args, **kwargs)

    def memory(self):
        """Bytes the compiled schedules hold: {signature: Schedule.memory()}."""
        return {k: s.memory() for k, s in self.schedules.items()}


def _call(self, *args, **kwargs):
    """A frozen GraphModule's __call__ (GraphModule gives each instance a class
    of its own): straight to the schedule where torch's Module.__call__ would
    only call forward -- no hooks, not traced, not compiled, not inside
    torch.compile -- else torch's own call (_lc_torch_call).  Why: torch's
    call is six Python frames (fx's _WrappedCall, Module._wrapped_call_impl,
    _call_impl, ...) that a model's run has evicted from the caches by the
    next call: MobileNetV2 224 at 2 threads took 45 us longer through them
    (median, calls alternating in one process; load 4.5, every figure about
    twice its quiet value)."""
    hooks = _torch_module
    if self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or \
            self._backward_pre_hooks or hooks._global_forward_hooks or \
            hooks._global_forward_pre_hooks or hooks._global_backward_hooks or \
            hooks._global_backward_pre_hooks or self._compiled_call_impl is not None or \
            torch._C._get_tracing_state() or torch.compiler.is_compiling():
        return self._lc_torch_call(*args, **kwargs)
    return self._lc_scheduled(*args, **kwargs)


def install(gm, example_inputs):
    """Run gm's calls through a ScheduledForward, compiled for example_inputs."""
    runner = ScheduledForward(gm)
    gm._lc_scheduled = runner
    gm.forward = types.MethodType(_forward, gm)
    cls = type(gm)
    if cls.__call__ is not _call:      # (a copy of a frozen model inherits it)
        cls._lc_torch_call = cls.__call__
        cls.__call__ = _call
    if runner.built is not None and example_inputs is not None:
        runner.compile(tuple(example_inputs))
    return runner
