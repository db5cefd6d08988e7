"""A node as the op builders see it: inputs, outputs, typed attributes, and a
check that every attribute it carries is one the builder understands."""
from __future__ import annotations

import numpy as np
from onnx import AttributeProto, helper, numpy_helper


def unsupported(what: str) -> NotImplementedError:
    return NotImplementedError(f"leanconv.onnx does not support {what}")


class Node:
    """One NodeProto, read once.  `attr(name, default)` returns a Python value
    (ints, floats, strings, lists, NumPy arrays for tensors)."""

    def __init__(self, proto, opset: int):
        # No reference to `proto` is kept: op closures hold their Node, and one
        # live NodeProto keeps the whole ModelProto -- every weight, a second
        # copy of them -- in memory for as long as the prepared model lives.
        self.op_type = proto.op_type
        self.name = proto.name or f"{proto.op_type}({', '.join(proto.output)})"
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.opset = opset
        self.attrs = {}
        for a in proto.attribute:
            if a.ref_attr_name:
                raise unsupported(f"attribute references ({self.name}.{a.name})")
            if a.type == AttributeProto.TENSOR:
                self.attrs[a.name] = numpy_helper.to_array(a.t)
            elif a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                raise unsupported(f"subgraph attribute {a.name!r} of {self.op_type} "
                                  f"node {self.name}")
            elif a.type == AttributeProto.SPARSE_TENSOR:
                raise unsupported(f"sparse tensor attribute {a.name!r} of {self.op_type} node "
                                  f"{self.name}")
            else:
                v = helper.get_attribute_value(a)
                if isinstance(v, bytes):
                    v = v.decode()
                elif isinstance(v, list) and v and isinstance(v[0], bytes):
                    v = [s.decode() for s in v]
                self.attrs[a.name] = v

    def allow(self, *names):
        """NotImplementedError for an attribute this builder does not know."""
        extra = sorted(set(self.attrs) - set(names))
        if extra:
            raise unsupported(f"attribute {extra[0]!r} of {self.op_type} (node {self.name})")

    def attr(self, name, default=None):
        return self.attrs.get(name, default)

    def input(self, i):
        """Name of input i, or '' when it is absent (optional inputs)."""
        return self.inputs[i] if i < len(self.inputs) else ""

    def n_outputs(self):
        """Outputs actually asked for (trailing empty names do not count)."""
        names = list(self.outputs)
        while names and not names[-1]:
            names.pop()
        return len(names)

    def __repr__(self):
        return f"<{self.op_type} {self.name}>"


def as_int_list(v, name, node):
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        v = v.tolist()
    try:
        return [int(x) for x in v]
    except TypeError:
        raise ValueError(f"{node.op_type} node {node.name}: {name} must be a list of "
                         f"ints") from None
