"""Everything the profiler and the splitter need from leanconv.onnx, in one place.

The interface (all the other tools use only this):

  load_model(path)                   -> onnx.ModelProto; ValueError for a missing file or
                                        one that is not an ONNX model
  prepare(model, threads)            -> a prepared model; ValueError naming an unsupported op
  make_feeds(model, shapes, seed)    -> {input name: random array}; `shapes` overrides
                                        declared or symbolic dimensions
  trace(prepared, feeds)             -> [StepFacts] in execution order, from one run
  memory_traits(prepared, feeds)     -> how the executor holds memory (arena or fresh arrays)
  step_names(prepared, feeds)        -> the names trace gives the steps, without timing
  arena_place()                      -> the arena executor's buffer placement
  time_steps(prepared, feeds, ...)   -> [[seconds, ...] per step], from whole runs repeated
                                        until min_runs and min_time are reached

WEIGHTS_AT_PREPARE: leanconv.onnx loads every weight when it prepares a model
(and keeps each Conv's packed copy after the first run), so while any node
runs, all of the model's weights are held.

A step is what the executor runs as one unit: a node, or a Conv with the
BatchNormalization and Relu/Clip fused into it.  StepFacts carries what the
memory model needs: the values the step reads and writes (and their bytes),
the bytes of weights it holds, its packed Conv weights and its workspace."""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import time
import tracemalloc
import weakref
from dataclasses import dataclass, field

import numpy as np
import onnx
from google.protobuf.message import DecodeError

import leanconv.onnx as lco

WEIGHTS_AT_PREPARE = True

_FLOAT_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
                onnx.TensorProto.FLOAT16: np.float16}
_INT_TYPES = {onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32,
              onnx.TensorProto.BOOL: np.bool_, onnx.TensorProto.UINT8: np.uint8,
              onnx.TensorProto.INT8: np.int8}


@dataclass
class StepFacts:
    name: str                    # the node's name (its first output's name if unnamed)
    op: str                      # op type, fused ops joined by '+': Conv+BatchNormalization+Relu
    inputs: list                 # value names read (model inputs or earlier steps' outputs)
    outputs: list                # value names written
    output_bytes: dict = field(default_factory=dict)   # output name -> bytes
    weight_bytes: int = 0        # bytes of weights held for this step: raw Conv weights and
    #                              bias as the executor keeps them, constants it reads first
    packed_bytes: int = 0        # packed Conv weights (leanconv plan)
    index: int = 0               # position in the executor's steps
    view: bool = False           # its outputs are views of its first input (no new bytes)
    workspace_bytes: int = 0     # bytes a call allocates beyond its output: a Conv's exact
    #                              plan.workspace_bytes; for other ops the temporaries NumPy
    #                              allocated (tracemalloc peak beyond inputs and outputs)


def load_model(path) -> onnx.ModelProto:
    """The model at `path`; a ValueError (without the path: callers name it) otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError("no such file")
    if os.path.isdir(path):
        raise ValueError("a directory, not an ONNX model")
    try:
        model = onnx.load(path)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not an ONNX model (protobuf {type(e).__name__})") from None
    if not model.graph.node and not model.graph.output:
        raise ValueError("not an ONNX model (no graph in it)")
    return model


# The memory budget the tools prepare with: none (each Conv's packing is auto's
# choice for that layer alone), so a profile's per-node bytes add up and a part
# of a model packs each layer as the whole did; the default budget of
# lco.prepare is the whole model's (leanconv.onnx.budget.default_budget).
PER_LAYER_BUDGET = sys.maxsize


def prepare(model, threads=None, memory_budget=PER_LAYER_BUDGET):
    """lco.prepare, under tracemalloc: what the prepared model holds in Python
    objects and small arrays (steps, plans, biases, bound views) beyond its
    buffers is kept for memory_traits (object_bytes_per_node).  memory_budget:
    lco.prepare's (None: its default)."""
    warm_up()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        prepared = lco.prepare(model, threads=threads, memory_budget=memory_budget)
        gc.collect()
        _object_bytes[prepared] = max(0, tracemalloc.get_traced_memory()[0] - before
                                      - _buffer_bytes(prepared.program))
        return prepared
    except NotImplementedError as e:
        raise ValueError(f"leanconv.onnx cannot run this model: {e}") from None
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid model"
        raise ValueError(f"the model fails onnx.checker: {first}") from None
    finally:
        if started:
            tracemalloc.stop()


_object_bytes = weakref.WeakKeyDictionary()   # prepared model -> bytes (see prepare)


@functools.lru_cache(maxsize=None)
def warm_up():
    """Prepare and run a one-node Conv model once per process: what leanconv.onnx
    sets up on first use (imports, checker, caches) is the library's, not a
    model's (bench/split_memory.py's fresh process does the same before its
    baseline)."""
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    tiny = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["a", "w"], ["b"])], "warm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 1, 2, 2])], [w]))
    lco.prepare(tiny).run([np.ones((1, 1, 2, 2), np.float32)])


def _buffer_bytes(program):
    """Bytes of the arrays the memory model counts itself: constants, values
    folded at compile time, and the schedule's arena and lent workspace."""
    arrays = list(program.constants.values())
    sched = program.schedule
    if sched is not None:   # the arena and the lent workspace: views of one allocation
        arena = sched._arena
        arrays += list(sched.folded.values()) + [arena if arena.base is None else arena.base]
    return sum(int(a.nbytes) for a in arrays if isinstance(a, np.ndarray))


def model_inputs(model):
    """[(name, elem_type, [dim value or None])] of the graph inputs that are not initializers."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        out.append((vi.name, tt.elem_type, dims))
    return out


def make_feeds(model, shapes=None, seed=0):
    """A seeded random array per model input.  shapes: {name: shape} overriding
    the declared dimensions; an unnamed shape (key None) applies to the only
    input.  A symbolic dimension left unset becomes 1."""
    inputs = model_inputs(model)
    shapes = dict(shapes or {})
    if None in shapes:
        if len(inputs) != 1:
            raise ValueError(f"the model has {len(inputs)} inputs "
                             f"({', '.join(n for n, _, _ in inputs)}): "
                             f"name them, as --input-shape NAME=1x3x224x224")
        shapes[inputs[0][0]] = shapes.pop(None)
    unknown = sorted(set(shapes) - {n for n, _, _ in inputs})
    if unknown:
        raise ValueError(f"--input-shape names unknown input(s) {unknown}; the model's inputs "
                         f"are {[n for n, _, _ in inputs]}")
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, elem, dims in inputs:
        shape = list(shapes.get(name, [d if d else 1 for d in dims]))
        if dims and len(shape) != len(dims):
            raise ValueError(f"--input-shape {name}: the model declares rank {len(dims)}, "
                             f"got {'x'.join(map(str, shape))}")
        if elem in _FLOAT_TYPES:
            feeds[name] = rng.standard_normal(shape).astype(_FLOAT_TYPES[elem])
        elif elem in _INT_TYPES:
            feeds[name] = rng.integers(0, 2, shape).astype(_INT_TYPES[elem])
        else:
            raise ValueError(f"cannot make a random value for input {name!r} "
                             f"(element type {onnx.TensorProto.DataType.Name(elem)})")
    return feeds


@contextlib.contextmanager
def blas_threads(threads):
    """NumPy's BLAS (Gemm, MatMul steps) limited to leanconv's thread count while
    we time: an unlimited OpenBLAS pool next to leanconv's OpenMP threads
    oversubscribes the cores and turned a 0.1 ms Gemm into 20 ms on a loaded
    machine.  No limit when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def _threads(prepared):
    import leanconv as lc
    return prepared.program.settings.threads or lc.get_num_threads()


def step_names(prepared, feeds):
    """The names trace() gives the nodes, without timing anything."""
    sched = schedule(prepared, feeds)
    kinds = getattr(sched, "kinds", None) or ["run"] * len(prepared.program.steps)
    return [_step_name(s) for s, k in zip(prepared.program.steps, kinds) if k != "fold"]


def arena_place():
    """The arena executor's buffer placement (for a profile that says it ran on one)."""
    try:
        from leanconv.onnx import arena
    except ImportError:
        raise ValueError("the profile was taken on leanconv.onnx's arena executor, which this "
                         "leanconv does not have: profile the model with this version") from None
    return arena.place


def _step_name(step):
    return step.name or next((o for o in step.outputs if o), step.op_type)


def trace(prepared, feeds):
    """Run the model once, step by step, and return what each step read,
    wrote and held.  Runs like Program.run (same steps, same frees) but
    looks at every output before its readers free it, and under tracemalloc
    (NumPy reports its buffers to it) to see each step's temporaries."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        return _trace(prepared, feeds)
    finally:
        if started:
            tracemalloc.stop()


def schedule(prepared, feeds):
    """The executor's compiled schedule for these inputs (a static activation
    arena), or None: the interpreter (each value a fresh array, freed after its
    last reader) runs the model.  Compiling packs every Conv."""
    program = prepared.program
    compile_for = getattr(program, "schedule_for", None)
    return None if compile_for is None else compile_for(prepared.feeds(feeds))


def memory_traits(prepared, feeds):
    """How this executor holds memory, for the memory model (profile.py):
      weights_at_prepare  every weight is loaded (and packed) before any node runs
      arena               activations live in one static arena of value buffers,
                          allocated for the whole run, instead of fresh arrays
      feeds_copied        the inputs are copied into the arena (the caller keeps its own)
      outputs_copied      the outputs are returned as copies of their arena buffers
      place               the arena's placement: {key: (bytes, first, last)} -> (offsets, bytes)
      workspace_lent      one scratch buffer, the largest Conv workspace, is held for the
                          whole run and lent to every Conv (other ops allocate their own)
      object_bytes_per_node  Python objects and small arrays the prepared model holds
                          beyond its buffers (tracemalloc at prepare), per node"""
    sched = schedule(prepared, feeds)
    objects = _object_bytes.get(prepared, 0) // max(1, len(step_names(prepared, feeds)))
    if sched is None:
        return {"object_bytes_per_node": objects,
                "weights_at_prepare": WEIGHTS_AT_PREPARE, "arena": False,
                "feeds_copied": False, "outputs_copied": False, "place": None,
                "workspace_lent": False}
    return {"object_bytes_per_node": objects,
            "weights_at_prepare": True, "arena": True, "feeds_copied": True,
            "outputs_copied": True, "place": arena_place(),
            "workspace_lent": hasattr(sched, "lent_workspace")}


def _trace(prepared, feeds):
    program = prepared.program
    sched = schedule(prepared, feeds)   # compiles (and packs) before anything is measured
    kinds = getattr(sched, "kinds", None) or ["run"] * len(program.steps)
    values = dict(program.constants)
    values.update(prepared.feeds(feeds))
    threads = program.settings.threads
    static = set(program.constants)     # constants, and values folded from input shapes
    first_reader = {}
    for i, step in enumerate(program.steps):
        for n in step.inputs:
            if n in program.constants:
                first_reader.setdefault(n, i)
    facts = []
    for i, step in enumerate(program.steps):
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        with blas_threads(_threads(prepared)):
            step.run(values)
        peak = tracemalloc.get_traced_memory()[1]
        if kinds[i] == "fold":           # computed once from shapes: a constant, not a node
            static.update(n for n in step.outputs if n)
            continue
        f = StepFacts(name=_step_name(step), op=step.label(),
                      inputs=[n for n in step.inputs if n and n not in static],
                      outputs=[n for n in step.outputs if n])
        f.index, f.view = i, kinds[i] == "view"
        f.output_bytes = {n: int(values[n].nbytes) if n in values else 0 for n in f.outputs}
        if sched is not None:            # the schedule's own figure for this step
            f.workspace_bytes = 0 if f.view else int(step.workspace_bytes)
        else:                            # NumPy temporaries of the interpreter's call
            f.workspace_bytes = max(0, peak - before - sum(f.output_bytes.values()))
        f.weight_bytes = sum(int(np.asarray(program.constants[n]).nbytes)
                             for n in step.inputs if n and first_reader.get(n) == i)
        conv = step.conv
        if conv is not None and conv.last_plan is not None:
            plan = conv.last_plan
            f.packed_bytes = int(plan.packed_bytes)
            if sched is None:
                f.workspace_bytes = max(f.workspace_bytes, int(plan.workspace_bytes(
                    conv.last_input_shape, threads=threads)))
            for held in (getattr(conv, "weight", None), getattr(conv, "bias", None)):
                if held is not None:     # raw weights the executor still holds
                    f.weight_bytes += int(held.nbytes)
        facts.append(f)
    return facts


def time_steps(prepared, feeds, min_runs=7, min_time=0.2):
    """Per step (all of program.steps, by index), the seconds of each timed
    whole-model run (after one untimed warm-up run that packs every plan): at
    least min_runs runs and min_time seconds of them.  A step the executor
    does not run (a view taken once, a value folded from shapes) gets 0."""
    program = prepared.program
    feeds = prepared.feeds(feeds)
    with blas_threads(_threads(prepared)):
        program.run(feeds)
    samples = [[] for _ in program.steps]
    index = {id(s): i for i, s in enumerate(program.steps)}
    runs, spent = 0, 0.0
    with blas_threads(_threads(prepared)):
        while runs < min_runs or spent < min_time:
            spent += _timed_run(program, feeds, samples, index)
            runs += 1
    for ts in samples:
        ts.extend([0.0] * (runs - len(ts)))
    return samples


def _timed_run(program, feeds, samples, index):
    """One whole-model run; appends each step's seconds; -> the run's seconds."""
    timings = []
    t0 = time.perf_counter()
    program.run(feeds, timings)
    for step, seconds in timings:
        samples[index[id(step)]].append(seconds)
    return time.perf_counter() - t0
