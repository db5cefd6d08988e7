"""A Program compiled for one set of input shapes: every intermediate in a
static arena, a flat list of bound calls.

Compiling runs the program once (the interpreter, on the given inputs) to
learn every value's shape and dtype and which values are views.  Then:

- values that depend only on constants and input *shapes* (Shape, Gather of
  a shape, the Concat building a Reshape target, ...) are folded: computed
  now, never at run time;
- views (Reshape, Flatten, Squeeze, Slice, ... whose output shares memory
  with their input) are taken once of the arena buffer: no run-time step;
- every other value gets a buffer: lifetime from its producer to its last
  reader (through views), an elementwise op may write over an input that
  dies there (in place), and arena.place packs the buffers;
- each remaining step becomes one bound call writing into its buffers.

memory() reports what a run holds: packed weights and constants, the arena,
the largest scratch one step allocates (convolution workspace, or the
temporary of an op without an `into` form), and the executor's own objects."""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from leanconv import _core, _scratch
from leanconv._heap import back_with_huge_pages, return_freed_memory
from leanconv.onnx import arena, footprint
from leanconv.onnx import budget as budget_mod
from leanconv.onnx.program import timed

# bound calls of other steps that work in the Convs' lent workspace (a fused
# inverted-residual block, the token GEMM's packed rows, the batched GEMM's)
_LENT_WORKSPACE = (_core.BoundIRBlock, _core.BoundTokenGemm, _core.BoundBatchedGemm,
                   _core.BoundSequence)


# ops whose output shape follows the *values* of some input (past the first,
# for ConstantOfShape the first): with such an input computed from the data,
# shapes are not fixed by the input shapes and nothing can be planned
SHAPE_FROM_VALUES = {"Reshape", "Expand", "ConstantOfShape", "Range", "Slice", "Split", "Pad",
                     "Resize", "Tile", "Unsqueeze", "Squeeze", "ReduceMean", "ReduceSum",
                     "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare"}


# huge pages may add 1/GROWTH_SHARE of a schedule's buffers to the resident set
GROWTH_SHARE = 64


class NotPlannable(Exception):
    """The program's shapes or dtypes do not allow a static arena."""


def _shares(a, b):
    return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.shares_memory(a, b)


def held_weights(steps):
    """The arrays fused steps packed and hold themselves (Step.held), each
    buffer once."""
    seen, arrays = set(), []
    for s in steps:
        for a in (s.held() if s.held is not None else ()):
            owner = a
            while isinstance(owner.base, np.ndarray):
                owner = owner.base
            if id(owner) not in seen:
                seen.add(id(owner))
                arrays.append(owner)
    return arrays


class Schedule:
    def __init__(self, program, feeds):
        self.program = program
        self.signature = program.signature(feeds)
        steps = program.steps
        static = set(program.constants)
        folded = {}                  # name -> value known without the input data
        alias = {}                   # name -> name it is a view of
        info = {}                    # name -> (shape, dtype)
        kinds = []                   # per step: "fold", "view" or "run"
        conv_inputs = {}             # step index -> input shape (Conv workspace)
        scratch = {}
        known = set(program.constants)
        for s in steps:   # static values, and whether shapes follow run-time values
            if s.op_type == "Shape" or all(not n or n in known for n in s.inputs):
                known.update(n for n in s.outputs if n)
            elif s.op_type in SHAPE_FROM_VALUES and any(
                    n and n not in known for n in s.inputs[0 if s.op_type in (
                        "ConstantOfShape", "Range") else 1:]):
                raise NotPlannable(f"{s.op_type} node {s.name} takes its output shape from "
                                   f"values computed at run time")

        def observe(s, args, outs):
            i = len(kinds)
            names = [n for n in s.outputs if n]
            if s.op_type == "Shape" or all(not n or n in static for n in s.inputs):
                kinds.append("fold")
                for name, v in zip(s.outputs, outs):
                    if name:
                        static.add(name)
                        folded[name] = v
                return
            for name, v in zip(s.outputs, outs):
                if name:
                    v = np.asarray(v)
                    if v.dtype.hasobject:
                        raise NotPlannable(f"node {s.name} makes {v.dtype} values")
                    info[name] = (v.shape, v.dtype)
            if s.view and all(_shares(v, args[0]) for n, v in zip(s.outputs, outs) if n):
                kinds.append("view")
                for name in names:
                    alias[name] = s.inputs[0]
                return
            kinds.append("run")
            if s.conv is not None:
                conv_inputs[i] = args[0].shape
            elif s.workspace is not None:
                scratch[i] = int(s.workspace(*args))
            elif s.into is None:   # the allocated result is copied into the arena
                scratch[i] = sum(np.asarray(v).nbytes for n, v in zip(s.outputs, outs) if n)

        # zeros from the Conv steps may reach a log or a division
        with np.errstate(all="ignore"), blas_limit():
            program.interpret(feeds, observe, shapes_only=True)
        self.kinds = kinds
        self.folded = folded

        def root(name):
            while name in alias:
                name = alias[name]
            return name

        run_idx = [i for i, k in enumerate(kinds) if k == "run"]
        order = {i: t for t, i in enumerate(run_idx)}   # step index -> run position
        end = len(run_idx)
        feeds_needed = set()
        # lifetimes of buffers (roots), in run positions; feeds are copied in at -1
        first, last = {}, {}
        for name in feeds:
            first[name] = -1
        for i in run_idx:
            for name in steps[i].outputs:
                if name and name in info:
                    first.setdefault(name, order[i])
        for i, s in enumerate(steps):
            if kinds[i] == "fold":
                continue
            t = order.get(i)
            for n in s.inputs:
                if n and n not in static:
                    r = root(n)
                    if r in feeds:
                        feeds_needed.add(r)
                    if t is not None:
                        last[r] = max(last.get(r, -1), t)
        for n in program.outputs:
            if n not in static:
                r = root(n)
                last[r] = end
                if r in feeds:
                    feeds_needed.add(r)
        into_slice, elided = self._concat_slices(steps, kinds, run_idx, info, alias,
                                                 set(feeds) | set(program.outputs), first, last)
        # in place: an elementwise output takes over a same-shaped input dying here
        merged = {}
        for i in run_idx:
            s = steps[i]
            out = s.outputs[0] if s.outputs else ""
            if not (s.inplace and out and out in info and out in last and out not in alias
                    and out not in into_slice):
                continue
            allowed = range(len(s.inputs)) if s.inplace is True else s.inplace
            # a buffer the step also reads where it may not write (a Conv's x that is
            # its residual too) is not taken over: the output would overwrite its input
            others = {merged.get(root(m), root(m)) for k, m in enumerate(s.inputs)
                      if m and m not in static and k not in allowed}
            for n in [s.inputs[k] for k in allowed if k < len(s.inputs)]:
                r = root(n) if n and n not in static else None
                r = merged.get(r, r)
                if r is None or r in feeds or r in into_slice or n not in info or \
                        info[n] != info[out] or r in others or \
                        r == out or last.get(r) != order[i] or info[r][0] != info[out][0]:
                    continue
                merged[out] = r
                last[r] = last[out]
                break
        buffers = {}
        for name, (shape, dtype) in info.items():
            if name in alias or name in merged or name in into_slice or name not in last:
                continue
            buffers[name] = (int(np.prod(shape, dtype=np.int64)) * dtype.itemsize,
                             first.get(name, -1), last[name])
        for name in feeds_needed:
            v = feeds[name]
            if v.dtype.hasobject:
                raise NotPlannable(f"input {name!r} holds {v.dtype} values")
            buffers[name] = (v.nbytes, -1, last.get(name, -1))
            info[name] = (v.shape, v.dtype)
        offsets, total = arena.place(buffers)
        self.arena_bytes = total
        self._step_weights = held_weights(steps)
        # what run() returns: copies out of the arena, new memory every run
        def value_bytes(n):   # a computed value, a folded one, or a constant
            if n in info:
                return int(np.prod(info[n][0], dtype=np.int64)) * np.dtype(info[n][1]).itemsize
            return np.asarray(folded[n] if n in folded else program.constants[n]).nbytes
        self.output_bytes = sum(value_bytes(n) for n in program.outputs)
        self._pack(steps, conv_inputs,
                   total + self.output_bytes + sum(a.nbytes for a in self._step_weights),
                   max(scratch.values(), default=0))
        for i in conv_inputs:
            scratch[i] = steps[i].conv.workspace_bytes(conv_inputs[i])
        if self.program.release_when_packed:
            # the shape pass's values, freed but kept by the heap (glibc's risen mmap
            # threshold), go back before the arena and the bound calls come on top
            # of them (Swin-T: 17 MB given back here)
            return_freed_memory()
        raw = np.empty(total + arena.ALIGN, dtype=np.uint8)
        skip = (-raw.ctypes.data) % arena.ALIGN
        self._arena = raw[skip:skip + total]
        self.lent_workspace = None   # set by _bind
        bound = dict(program.constants)
        bound.update(folded)
        for name, off in offsets.items():
            shape, dtype = info[name]
            nbytes = buffers[name][0]
            bound[name] = self._arena[off:off + nbytes].view(dtype).reshape(shape)
        for name, r in merged.items():
            bound[name] = bound[r].reshape(info[name][0])
        for name, (out, a, start, stop) in into_slice.items():
            bound[name] = bound[out][(slice(None),) * a + (slice(start, stop),)]
        self.feed_slots = [(n, bound[n]) for n in sorted(feeds_needed)]
        # views, then calls, in step order
        entries = []
        for i, s in enumerate(steps):
            if kinds[i] == "fold" or i in elided:
                continue
            args = [bound[n] if n else None for n in s.inputs]
            if kinds[i] == "view":
                outs = s.fn(*args)
                for name, v in zip(s.outputs, outs):
                    if name:
                        if not _shares(v, args[0]):
                            raise RuntimeError(f"step {s.name}: a view op returned a copy")
                        bound[name] = v
                continue
            outs = [bound.get(n) if n else None for n in s.outputs]
            entries.append((s, outs, args, i))
        self._entries = entries
        self._conv_inputs, self._scratch = conv_inputs, scratch
        self._bind(program.settings.threads)
        self.outputs = [bound[n] if n in bound else bound[root(n)] for n in program.outputs]
        # packed data: the Convs' packings, fused steps' weights, and what bound
        # calls hold for their runs (a pool's tables, built once)
        self.packed_bytes = sum({id(s.conv.last_plan): s.conv.packed_bytes for s in steps
                                 if s.conv is not None and s.conv.last_plan is not None}.values()) \
            + sum(a.nbytes for a in self._step_weights) \
            + sum(c.held_bytes for _, c in self._bound_calls if isinstance(c, _core.BoundCall))
        self.constant_bytes = sum(np.asarray(v).nbytes for v in program.constants.values())
        self._bookkeeping = None

    def _bind(self, threads):
        """The run-time calls for this thread count.  A Conv whose buffers are
        plain contiguous arrays becomes a _core.BoundConv (no per-call Python),
        and runs of consecutive ones one C loop over a workspace held by the
        schedule; every other step is a bound Python call."""
        self.threads = threads
        calls = []
        conv_ws = other_ws = 0
        for s, outs, args, i in self._entries:
            b = s.conv.bind(outs, *args) if s.conv is not None else None
            if b is not None:
                call = b
                conv_ws = max(conv_ws, b.workspace_bytes)
                s.workspace_bytes = b.workspace_bytes
            elif s.bind is not None and (b := s.bind(outs, *args)) is not None:
                call = b   # another step's C call (pooling), run among the Convs'
                if isinstance(b, _LENT_WORKSPACE):   # works in the Convs' lent workspace
                    s.workspace_bytes = b.workspace_bytes
                    conv_ws = max(conv_ws, s.workspace_bytes)
                else:
                    s.workspace_bytes = self._scratch.get(i, 0)   # (its own, as before)
                    other_ws = max(other_ws, s.workspace_bytes)
            elif i in self._conv_inputs:   # a Conv called through into(): the lent workspace
                call = functools.partial(s.into, outs, *args)
                s.workspace_bytes = s.conv.workspace_bytes(self._conv_inputs[i])
                conv_ws = max(conv_ws, s.workspace_bytes)
            else:
                call = functools.partial(s.into, outs, *args) if s.into is not None else \
                    functools.partial(_copy_into, s.fn, outs, args)
                s.workspace_bytes = self._scratch.get(i, 0)
                other_ws = max(other_ws, s.workspace_bytes)
            s.output_bytes = sum(o.nbytes for o in outs if o is not None)
            calls.append((s, call))
        self._bound_calls = calls
        # every Conv works in the calling thread's one scratch buffer
        # (leanconv._scratch, which frozen torch models borrow too): a workspace
        # allocated and freed per call fragments the heap, and the pages of the
        # holes it leaves stay resident; another step allocates its own.  The
        # buffer is looked up per run (it may have grown, or be another thread's)
        self._conv_ws = conv_ws
        ws = self.lent_workspace = self._lent()
        # the held Conv buffer, and another step's own scratch on top while it runs (as
        # the profile's memory model counts it, traits workspace_lent)
        self.workspace = conv_ws + other_ws
        fns, group = [], []
        for _, call in calls:
            if isinstance(call, _core.BoundCall):
                group.append(call)
                continue
            if group:
                fns.append((functools.partial(_core.run_bound, tuple(group)), True))
                group = []
            fns.append((call, False))
        if group:
            fns.append((functools.partial(_core.run_bound, tuple(group)), True))
        self._fns = fns   # (call, whether it takes the lent workspace)
        self.calls = [(s, functools.partial(_core.run_bound, (c,), ws)
                       if isinstance(c, _core.BoundCall) else c) for s, c in calls]
        # NumPy's BLAS runs in the steps left in Python (a bound call is C alone)
        self.blas = any(s.blas and not isinstance(c, _core.BoundCall) for s, c in calls)
        # one C loop of bound calls and nothing else (no step in Python, no BLAS
        # to bound): run() calls it directly
        self._lean = tuple(group) if group and len(fns) == 1 and not self.blas else None
        # for timings: every step of the program, those with nothing to do at run
        # time (folded, views, Concats written in place) as None
        by_step = {id(s): c for s, c in self.calls}
        self._timed = [(s, by_step.get(id(s))) for s in self.program.steps]
        self._steps_info = [(s, s.output_bytes, s.workspace_bytes) for s, _ in calls]

    @staticmethod
    def _concat_slices(steps, kinds, run_idx, info, alias, keep, first, last):
        """Concat without a copy: each value a Concat gathers is written by its
        producer straight into its slice of the output (the slices are
        contiguous when the dimensions before the axis are all 1, e.g. a batch
        of one on the channel axis).  Concats of Concats are flattened into one
        list of leaves, and a Concat whose leaves are a run of a bigger one's
        is a slice of that one's buffer too: DenseNet's blocks concatenate
        every earlier layer's output again for each layer (or the last concat
        and the new output), which becomes one block-wide buffer that each
        layer writes its slot of.  A leaf may have other readers: the buffer
        then lives until the last of them.  Returns ({value: (buffer, axis,
        start, stop)}, indices of the Concat steps left with nothing to do);
        moves each buffer's first use back to its earliest producer and its
        last use on to its leaves' and slices' last."""
        producer = {n: i for i in run_idx for n in steps[i].outputs if n}

        def eligible(i):
            s = steps[i]
            if s.concat_axis is None or not s.outputs or s.outputs[0] not in info:
                return None
            shape = info[s.outputs[0]][0]
            a = s.concat_axis % len(shape)
            if int(np.prod(shape[:a], dtype=np.int64)) != 1 or s.outputs[0] in alias:
                return None
            return a
        axes = {i: a for i in run_idx if (a := eligible(i)) is not None}
        by_out = {steps[i].outputs[0]: i for i in axes}
        leaves = {}

        def flat(i):   # the values concat i gathers, its same-axis concats expanded
            if i not in leaves:
                leaves[i] = []
                for n in steps[i].inputs:
                    j = by_out.get(n)
                    sub = flat(j) if j is not None and axes[j] == axes[i] else None
                    leaves[i].extend(sub if sub is not None else [n])
            return leaves[i]
        for i in axes:
            flat(i)

        into_slice, elided = {}, set()

        def placeable(n, dtype, a):
            p = producer.get(n)
            return (n and p is not None and kinds[p] == "run" and steps[p].concat_axis is None and
                    n not in alias and n not in keep and n not in into_slice and
                    info[n][1] == dtype and len(info[n][0]) > a)
        for i in sorted(axes, key=lambda i: -len(leaves[i])):
            if i in elided:
                continue
            out, a, names = steps[i].outputs[0], axes[i], leaves[i]
            dtype = info[out][1]
            if len(set(names)) != len(names) or \
                    not all(placeable(n, dtype, a) for n in names):
                continue
            offsets, start = [], 0
            for n in names:
                offsets.append(start)
                start += info[n][0][a]
            offsets.append(start)
            group = [i]
            for j in axes:   # concats of a run of these leaves: slices of this buffer
                sub = leaves[j]
                if j == i or j in elided or axes[j] != a or info[steps[j].outputs[0]][1] != dtype \
                        or steps[j].outputs[0] in keep or steps[j].outputs[0] in into_slice:
                    continue
                k = names.index(sub[0]) if sub and sub[0] in names else -1
                if k >= 0 and names[k:k + len(sub)] == sub:
                    into_slice[steps[j].outputs[0]] = (out, a, offsets[k], offsets[k + len(sub)])
                    group.append(j)
            for n, lo, hi in zip(names, offsets, offsets[1:]):
                into_slice[n] = (out, a, lo, hi)
                first[out] = min(first.get(out, 0), first[n])
            held = names + [steps[j].outputs[0] for j in group]
            last[out] = max(last.get(v, -1) for v in held)
            elided.update(group)
        return into_slice, elided

    def _pack(self, steps, conv_inputs, fixed_bytes, other_scratch):
        """Pack every Conv with constant weights for its input shape, the
        algorithms chosen to fit the memory budget if there is one; largest
        weights first: each layer's raw weights exist only while it is packed,
        so the peak while packing is the largest layer's raw copy on top of
        few packed bytes, not on top of nearly all of them."""
        convs = [i for i in conv_inputs if steps[i].conv.weight_shape is not None]
        settings = self.program.settings
        budget = getattr(settings, "memory_budget", None)
        if budget is not None or settings.algorithm == "auto":
            if budget is None:   # the default: Winograd within a bound (budget.default_budget)
                # priced at one thread, whatever the run's count: the same
                # algorithms (and so the same bits) at any thread count, and
                # Winograd's larger workspace at 2 threads (its input
                # transformed whole first: 3.9 MB against 1.2 for
                # 64->192 @56) does not push the model's largest layers off
                # Winograd, which costs more time than those bytes are worth
                layers = [steps[i].conv.candidates(conv_inputs[i], 1) for i in convs]
                raw = [4 * int(np.prod(steps[i].conv.weight_shape)) for i in convs]
                largest = max([np.asarray(v).nbytes for v in self.program.constants.values()]
                              + raw, default=0)
                names = budget_mod.default_budget(layers, raw, largest)
            else:
                layers = [steps[i].conv.candidates(conv_inputs[i], settings.threads)
                          for i in convs]
                fixed = fixed_bytes + sum(np.asarray(v).nbytes
                                          for v in self.program.constants.values())
                names = budget_mod.fit(layers, fixed, other_scratch, budget)
            for i, name in zip(convs, names):
                steps[i].conv.algorithm_override = name
        release = self.program.release_when_packed
        for i in sorted(convs, key=lambda i: -int(np.prod(steps[i].conv.weight_shape))):
            steps[i].conv.plan_for(np.broadcast_to(np.float32(0), conv_inputs[i]))
            if release:
                steps[i].conv.release()
                if 4 * int(np.prod(steps[i].conv.weight_shape)) >= 1 << 20:
                    # glibc keeps a freed buffer below its (risen) mmap threshold in the
                    # heap: given back now, a large layer's raw copy is not still
                    # resident when the next one is packed (ConvNeXt: 20 MB of peak)
                    return_freed_memory()

    def back_with_huge_pages(self):
        """Huge pages under what every run reads -- packed weights (the Convs'
        and the fused steps'), constants, arena, workspace -- where the system
        offers them (leanconv._heap.back_with_huge_pages: fewer TLB misses,
        which after a pause are most of them).  Called once the heap has
        settled: prepare's last malloc_trim would split them again.  Returns
        the bytes collapsed."""
        # the arena and the workspace are first written by a run: written now, their
        # pages are resident, which a span needs to be collapsed (and the first run
        # would make them so anyway)
        self._arena.fill(0)
        self.lent_workspace.fill(0)
        ranges = [c.packed_range for _, c in self._bound_calls if isinstance(c, _core.BoundConv)]
        ranges += [(a.ctypes.data, a.nbytes) for a in self._run_arrays()
                   if isinstance(a, np.ndarray) and a.nbytes]
        # the pages of neighbouring free holes that collapsing makes resident: at
        # most 1/64 of what the plan holds (the peak RSS test allows 5%)
        return back_with_huge_pages(ranges, sum(n for _, n in ranges) // GROWTH_SHARE)

    def publish(self):
        """Make this schedule's per-step facts the ones the steps report."""
        for s, out_b, ws_b in self._steps_info:
            s.output_bytes, s.workspace_bytes = out_b, ws_b
        self.program.settings.workspace = self.lent_workspace

    def count_bookkeeping(self):
        """Bytes of the executor's own objects (footprint.py), counted once:
        prepare calls it after dropping the raw weights it no longer needs,
        before giving the heap's free pages back (the walk's scratch with them)."""
        if self._bookkeeping is None:
            self._bookkeeping = footprint.object_bytes([self.program, self], self._run_arrays())
        return self._bookkeeping

    def _run_arrays(self):
        """The arrays every run reads besides the Convs' packings: constants,
        fused steps' weights, the activation arena and the lent workspace."""
        return list(self.program.constants.values()) + self._step_weights + \
            [self._arena, self.lent_workspace]

    @property
    def bookkeeping_bytes(self):
        return self.count_bookkeeping()

    def memory(self):
        """Bytes a run holds: packed weights + constants, activation arena,
        scratch, the executor's own objects (footprint.py), and the outputs
        it returns (copies out of the arena: 4 KB for a classifier, 1.3 MB for
        LR-ASPP's 21x128x128 map)."""
        parts = {"packed_weights": self.packed_bytes, "constants": self.constant_bytes,
                 "arena": self.arena_bytes, "workspace": self.workspace,
                 "bookkeeping": self.bookkeeping_bytes, "outputs": self.output_bytes}
        parts["total"] = sum(parts.values())
        return parts

    def run(self, feeds, timings=None):
        if self.threads != self.program.settings.threads:
            self._bind(self.program.settings.threads)
        for name, slot in self.feed_slots:
            np.copyto(slot, feeds[name])
        if self._lean and timings is None:
            # the one C loop straight away: after a model's run the code a call
            # goes through is cold (MobileNetV2 128 px, 1 thread, Zen 4: ~33 us
            # a run for _steps' layers)
            _core.run_bound(self._lean, self._lent())
        elif self.blas:   # NumPy's BLAS on the calling thread for the whole run (once: ~20 us)
            with blas_limit():
                self._steps(timings)
        else:
            self._steps(timings)
        return list(map(np.array, self.outputs))   # (a comprehension is a frame more)

    def _lent(self):
        return _scratch.lend(self._conv_ws) if self._conv_ws else _NO_WORKSPACE

    def _steps(self, timings):
        ws = self._lent()
        self.program.settings.workspace = ws   # for a Conv run through into()
        if timings is None:
            for call, lent in self._fns:
                if lent:
                    call(ws)
                else:
                    call()
        else:
            if ws is not self.lent_workspace:   # the timed calls hold the buffer they were bound with
                self._bind(self.threads)
            timed(self._timed, timings)


_NO_WORKSPACE = np.empty(0, np.uint8)


def _copy_into(fn, outs, args):
    for o, v in zip(outs, fn(*args)):
        if o is not None:
            np.copyto(o, v)


_blas_libs = []


def blas_limit():
    """A context running NumPy's BLAS on the calling thread (one thread,
    whatever threads= is) and restoring its setting after; a no-op without
    threadpoolctl.  Not threads=: OpenBLAS's workers busy-wait about 0.1 s
    after every multi-threaded call (its thread timeout, 2^28 cycles), and
    after a CNN's classifier Gemm (MobileNetV2: 1280x1000, 0.2 ms on one
    thread) one spun through the next runs, taking the second CPU from
    leanconv's pool worker (measured by thread CPU time: 40-50 ms of spin
    after each run; docs/threading.md).  It sets the libraries threadpoolctl
    found once directly (~1 us) rather than through threadpool_limits (~7 us
    a run)."""
    if not _blas_libs:
        try:
            from threadpoolctl import ThreadpoolController
            _blas_libs.append(ThreadpoolController().select(user_api="blas").lib_controllers)
        except ImportError:   # optional: without it BLAS keeps its own setting
            _blas_libs.append(())
    if not _blas_libs[0]:
        return contextlib.nullcontext()
    return _BlasLimit(_blas_libs[0], 1)


class _BlasLimit:
    def __init__(self, libs, threads):
        self.libs, self.threads = libs, threads

    def __enter__(self):
        self.before = [lib.get_num_threads() for lib in self.libs]
        for lib, n in zip(self.libs, self.before):
            if n is not None and n > self.threads:
                lib.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        for lib, n in zip(self.libs, self.before):
            if n is not None and n > self.threads:
                lib.set_num_threads(n)
