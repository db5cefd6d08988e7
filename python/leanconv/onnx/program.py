"""The executable form of a graph: a list of steps over named values.

A Step runs one (possibly fused) node: it reads its inputs from the value
table, returns its outputs, and lists the values that die after it so
intermediate activations are freed as soon as their last reader has run."""
from __future__ import annotations

import time


class Settings:
    """Per-prepared-model knobs the steps read at run time."""

    def __init__(self, algorithm="auto", threads=None):
        self.algorithm = algorithm
        self.threads = threads


class Step:
    __slots__ = ("op_type", "name", "inputs", "outputs", "fn", "conv", "free", "fused")

    def __init__(self, node, fn, inputs=None, conv=None, fused=()):
        self.op_type = node.op_type
        self.name = node.name
        self.inputs = list(node.inputs if inputs is None else inputs)
        self.outputs = list(node.outputs)
        self.fn = fn
        self.conv = conv          # the ConvOp of a Conv step (for profiles)
        self.free = ()            # value names to drop after this step
        self.fused = tuple(fused)  # op types folded into this step (BatchNormalization, Relu, ...)

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


class Program:
    def __init__(self, steps, constants, inputs, outputs, settings):
        self.steps = steps
        self.constants = constants   # name -> ndarray known at prepare time
        self.inputs = inputs         # [(name, dtype or None, rank or None)]
        self.outputs = outputs       # output names
        self.settings = settings
        self.initializer_names = frozenset()   # set by build_program, for error messages
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

    def run(self, feeds, timings=None):
        """feeds: name -> ndarray.  timings: optional list, gets (step, seconds)."""
        values = dict(self.constants)
        values.update(feeds)
        if timings is None:
            for s in self.steps:
                s.run(values)
        else:
            clock = time.perf_counter
            for s in self.steps:
                t0 = clock()
                s.run(values)
                timings.append((s, clock() - t0))
        missing = [n for n in self.outputs if n not in values]
        if missing:
            raise ValueError(f"graph outputs {missing} were never computed")
        return [values[n] for n in self.outputs]
