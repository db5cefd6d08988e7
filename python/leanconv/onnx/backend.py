"""The ONNX backend interface (onnx.backend.base): prepare / run_model /
run_node / supports_device, CPU only.

    import leanconv.onnx as lco
    rep = lco.prepare(onnx.load("model.onnx"), threads=2)
    (y,) = rep.run([x])               # or rep.run({"input": x})
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from leanconv import _threads
from leanconv._heap import return_freed_memory
from leanconv._select import check_name
from leanconv.onnx.graph import build_program
from leanconv.onnx.model_file import is_weight, load_without_weights, tensor_bytes


def _refuse_over_budget(planned, budget):
    """The convolutions' packings were chosen to fit the budget with
    everything else planned around them; the executor's own objects are only
    known once built, and may tip the total over: refuse rather than hold
    more than the caller allowed."""
    if budget is not None and planned > budget:
        raise MemoryError(f"the model needs at least {planned} bytes ({planned / 2**20:.1f} MiB) "
                          f"with the leanest algorithms that fit the rest; "
                          f"memory_budget={budget}")


class LeanconvRep(BackendRep):
    """A prepared model.  `run(inputs)` takes a list (graph inputs in order,
    initializers excluded), a dict name -> array, or a single array."""

    def __init__(self, program):
        self.program = program
        self._outputs_type = namedtupledict("Outputs", self.output_names)   # (made once: slow)
        # the inputs of the last run that went through the checks -- ((name,
        # shape, dtype), ...) in declared order -- and the schedule it ran
        self._last = None

    @property
    def input_names(self):
        return [name for name, _, _ in self.program.inputs]

    @property
    def output_names(self):
        return list(self.program.outputs)

    @property
    def threads(self):
        return self.program.settings.threads

    @threads.setter
    def threads(self, n):
        """Threads of every step (None: leanconv's setting now, resolved once:
        asking for it per call reads the cgroup files each time)."""
        self.program.settings.threads = _threads.resolve(n)

    def feeds(self, inputs):
        """Check and name the inputs of one run."""
        declared = self.program.inputs
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {n for n, _, _ in declared})
            if unknown:
                const = [n for n in unknown if n in self.program.initializer_names]
                raise ValueError(f"unknown model input(s) {unknown}"
                                 + (f" ({const} are initializers)" if const else "")
                                 + f"; inputs are {self.input_names}")
            items = [(n, dt, rank, inputs[n]) for n, dt, rank in declared if n in inputs]
            missing = [n for n, _, _ in declared if n not in inputs]
        else:
            if inputs is None:
                raise TypeError("inputs must be an array, a sequence of arrays or a dict "
                                "name -> array, got None")
            if isinstance(inputs, np.ndarray) or np.isscalar(inputs):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) > len(declared):
                raise ValueError(f"the model takes {len(declared)} input(s) {self.input_names}, "
                                 f"got {len(inputs)}")
            items = [(n, dt, rank, v) for (n, dt, rank), v in zip(declared, inputs)]
            missing = [n for n, _, _ in declared[len(inputs):]]
        if missing:
            raise ValueError(f"missing model input(s) {missing}")
        feeds = {}
        for name, dtype, rank, value in items:
            arr = value if type(value) is np.ndarray else np.asarray(value)
            if dtype is not None and arr.dtype != dtype:
                raise TypeError(f"input {name!r} must be {np.dtype(dtype).name}, got {arr.dtype}")
            if rank is not None and arr.ndim != rank:
                raise ValueError(f"input {name!r} must have rank {rank}, got shape {arr.shape}")
            feeds[name] = arr
        return feeds

    def memory(self):
        """Bytes a run holds, planned at prepare for the declared input shape
        (or for the last input shape run): {'packed_weights', 'constants',
        'arena', 'workspace', 'bookkeeping', 'outputs', 'total'}; 'outputs' are
        the arrays run() returns, copied out of the arena.  None before any
        shape is known."""
        sched = self.program.schedule
        return None if sched is None else sched.memory()

    def memory_bytes(self):
        """memory()['total']: packed weights + constants + activation arena +
        the largest scratch of one step + the executor's own objects + the
        outputs a run returns."""
        m = self.memory()
        if m is None:
            raise ValueError("the model's input shapes are not static: run it once (or prepare "
                             "with static input shapes) before asking for its memory")
        return m["total"]

    def run(self, inputs, **kwargs):
        if kwargs:
            raise TypeError(f"run() got unexpected keyword arguments {sorted(kwargs)}")
        outs = self._run_as_last(inputs)
        if outs is None:
            feeds = self.feeds(inputs)
            outs = self.program.run(feeds)
            sched = self.program.schedule
            self._last = None if sched is None or not self.program.plannable else (
                tuple((n, feeds[n].shape, feeds[n].dtype) for n, _, _ in self.program.inputs
                      if n in feeds), sched)
        # tuple.__new__, not the namedtuple's own __new__ (a Python frame)
        return tuple.__new__(self._outputs_type, outs)

    def _run_as_last(self, inputs):
        """The outputs, where `inputs` are arrays of exactly the names, shapes
        and dtypes the last checked run had (a model run in a loop): the
        checks would pass as they did, so the schedule runs straight away.
        None otherwise.  After a model's run its caches hold its weights and
        activations, not this code's: the checks, the input signature and the
        schedule lookup, ~50 us each cold, cost MobileNetV2 at 128 px ~4% of
        a run (AMD EPYC Zen 4, 1 thread)."""
        last = self._last
        if last is None:
            return None
        names, sched = last
        if type(inputs) is np.ndarray:
            inputs = (inputs,)
        if type(inputs) in (list, tuple):   # in declared order, every declared input
            if len(inputs) != len(names) or len(names) != len(self.program.inputs):
                return None
            inputs = {name: a for (name, _, _), a in zip(names, inputs)}
        elif type(inputs) is not dict or len(inputs) != len(names):
            return None
        for name, shape, dtype in names:
            a = inputs.get(name)
            if type(a) is not np.ndarray or a.dtype is not dtype or a.shape != shape:
                return None
        if sched is not self.program.schedule:
            return None
        return sched.run(inputs)


def _without_weights(model):
    """A copy of `model` for onnx.checker with every weight (model_file.is_weight,
    the rule that also leaves a weight's data in the file when prepare is
    given a path) declared as a graph input of its type instead: the checker
    serialises the model it gets (for ResNet-18 that held ~100 MB at its peak
    and left ~50 MB behind), while what it checks of a weight, its type and
    shape, stays visible this way.  The weights' contents are read when packed."""
    light = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                  "doc_string"):
        setattr(light, field, getattr(model, field))
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g, src = light.graph, model.graph
    g.name = src.name
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    g.sparse_initializer.extend(src.sparse_initializer)
    declared = {vi.name for vi in src.input}
    for t in src.initializer:
        if not is_weight(t.data_type, tensor_bytes(t)):
            g.initializer.append(t)
        elif t.name not in declared:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


def _check_device(device):
    if not LeanconvBackend.supports_device(device):
        raise ValueError(f"leanconv.onnx runs on CPU only, not {device!r}")


class LeanconvBackend(Backend):
    """CNN inference on leanconv convolutions (with fused epilogues), pooling and
    activations in leanconv's C, everything else in NumPy, in a static memory arena."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except Exception:
            return False

    @classmethod
    def prepare(cls, model, device: str = "CPU", *, algorithm="auto", threads=None,
                fuse=True, check=True, memory_budget=None, **kwargs) -> LeanconvRep:
        """Check the model, fold constants and BatchNorms, fuse activations.

        model: a ModelProto, a path, or serialized bytes.
        algorithm: leanconv algorithm for every Conv ('auto' picks per layer;
        a named one falls back to 'auto' on layers it cannot run).  threads:
        threads per convolution (default: leanconv's setting).  fuse=False
        keeps BatchNormalization/Relu/Clip as separate NumPy steps and skips
        the graph rewrites (rewrite.py).
        memory_budget: bytes a run may hold (rep.memory_bytes()): algorithms
        are chosen per layer to fit (Winograd packs alpha^2/9 the raw weights,
        patch2vec needs almost no workspace), trading first where the least
        time is lost per byte saved, else MemoryError with the bytes the
        leanest choice needs.  Checked when the memory is planned: at prepare
        for static input shapes, else at the first run.  None with
        algorithm="auto": the convolutions' packings and workspace hold at
        most their raw weights plus the model's largest weight (as
        leanconv.torch.freeze; budget.default_budget), never refused;
        memory_budget=sys.maxsize lets every layer take auto's packing."""
        if kwargs:
            raise TypeError(f"prepare() got unexpected keyword arguments {sorted(kwargs)}")
        _check_device(device)
        file_weights = None
        if isinstance(model, bytes):
            model = onnx.load_from_string(model)
        elif isinstance(model, str) or hasattr(model, "__fspath__"):
            # the weights stay in the file until each is packed (model_file.py)
            model, file_weights = load_without_weights(model)
        if check:
            onnx.checker.check_model(_without_weights(model))
        if memory_budget is not None and (isinstance(memory_budget, bool) or not isinstance(
                memory_budget, (int, np.integer)) or memory_budget <= 0):
            raise ValueError(f"memory_budget must be a positive number of bytes, got "
                             f"{memory_budget!r}")
        # a skeleton prepare opened itself goes to build_program alone (in a
        # list), which frees it as soon as it can; a caller's model is kept
        model = [model] if file_weights is not None else model
        program = build_program(model, check_name(algorithm), None, fuse, file_weights)
        program.settings.memory_budget = None if memory_budget is None else int(memory_budget)
        del model   # nothing below needs it: weights are read and packed by the first compile
        rep = LeanconvRep(program)
        rep.threads = threads
        sched = program.compile_declared()
        if sched is not None:
            program.release_weights()
        if file_weights is not None and program.keeps_weight_sources():
            file_weights.pin()   # packed again later: not from a file that may change
        if sched is not None:
            sched.count_bookkeeping()   # now: its walk's scratch is freed just below
            _refuse_over_budget(sched.memory()["total"], program.settings.memory_budget)
        return_freed_memory()   # what loading and packing freed (glibc keeps it)
        if sched is not None:
            sched.back_with_huge_pages()   # after the trim, which would split them
        return rep

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        """Run one NodeProto on a list (or dict) of inputs."""
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        super().run_node(node, inputs, device, opset_version=opset)   # onnx.checker.check_node
        if isinstance(inputs, dict):
            values = [inputs[n] for n in node.input if n]
        else:
            values = list(inputs)
        names = [n for n in node.input if n]
        graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(
            np.asarray(v).dtype), np.shape(v)) for n, v in zip(names, values)]
        graph_outputs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
        graph = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        return cls.prepare(model, device, check=False, **kwargs).run(values)

    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        try:
            build_program(model)
        except NotImplementedError:
            return False
        return cls.supports_device(device)


prepare = LeanconvBackend.prepare
run_model = LeanconvBackend.run_model
run_node = LeanconvBackend.run_node
supports_device = LeanconvBackend.supports_device
is_compatible = LeanconvBackend.is_compatible
