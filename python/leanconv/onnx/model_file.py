"""Open an .onnx file without holding its weights.

`onnx.load(path)` parses the whole file into one protobuf message: for
ResNet-18 that is 45 MB of weights held until the message dies, on top of the
packings prepare builds from them.  Here the file's protobuf wire
format walked only as deep as the graph's initializers (through _FileBytes,
which reads just the bytes the walk looks at), and every weight's
`raw_data` (is_weight: the one rule, which the checker's view in backend.py
follows too) left out of the message that onnx parses.  Each such
weight is read from the file (into memory of its own, not a mapping, so it
leaves the process's RSS when it is dropped) when prepare packs it.

Wire format, as far as this needs it: a message is a sequence of fields, each a
varint key (field number << 3 | wire type) followed by a varint (type 0),
8 bytes (1), a varint length and that many bytes (2) or 4 bytes (5).
ModelProto.graph is field 7, GraphProto.initializer field 5, and in
TensorProto data_type is field 2, name 8, raw_data 9 and data_location 14."""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx

from leanconv.onnx.node import NP_TYPES

_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_RAW_DATA, _TENSOR_DATA_LOCATION = 2, 8, 9, 14
WEIGHT_ABOVE = 4096   # bytes of data: a larger initializer is a weight


def _readable(data_type):
    """NumPy's dtype for a TensorProto data type whose raw_data this reader
    reads (fixed-size, little-endian), else None."""
    dtype = NP_TYPES.get(data_type)
    return None if dtype is None else np.dtype(dtype)


def is_weight(data_type, nbytes):
    """Whether an initializer of `nbytes` bytes of data is a weight: its data
    is left in the file until packed (load_without_weights), and the checker
    sees only its type and shape (backend._without_weights).  One rule for
    both, so every tensor the checker is shown has its data."""
    return nbytes > WEIGHT_ABOVE and _readable(data_type) is not None


def tensor_bytes(tensor):
    """Bytes of a TensorProto's data by its type and shape (0 for a type
    is_weight never takes)."""
    dtype = _readable(tensor.data_type)
    return 0 if dtype is None else int(np.prod(tensor.dims, dtype=np.int64)) * dtype.itemsize


def _varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _encode_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf, start, end):
    """(field number, wire type, field start, value start, value end) of each
    field in buf[start:end]; a length-delimited field's value is its bytes."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, value_end = _varint(buf, pos)
            value_start = pos
        elif wire == 1:
            value_start, value_end = pos, pos + 8
        elif wire == 2:
            length, value_start = _varint(buf, pos)
            value_end = value_start + length
        elif wire == 5:
            value_start, value_end = pos, pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if value_end > end:
            raise ValueError("a field runs past the end of its message")
        pos = value_end
        yield number, wire, field_start, value_start, value_end


def _length_delimited(number, payload):
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


class _ExternalData(Exception):
    """A tensor keeps its data in another file: onnx.load reads those."""


def _tensor_without_raw_data(buf, start, end):
    """(TensorProto bytes without raw_data, name, raw_data's (offset, length))
    or None when the tensor is no weight (is_weight) or keeps no raw_data."""
    name, raw, external, data_type = None, None, False, None
    kept = []
    for number, wire, fstart, vstart, vend in _fields(buf, start, end):
        if number == _TENSOR_RAW_DATA and wire == 2:
            raw = (vstart, vend - vstart)
            continue
        if number == _TENSOR_NAME and wire == 2:
            name = bytes(buf[vstart:vend]).decode("utf-8")
        elif number == _TENSOR_DATA_TYPE and wire == 0:
            data_type = _varint(buf, vstart)[0]
        elif number == _TENSOR_DATA_LOCATION and wire == 0:
            external = _varint(buf, vstart)[0] == 1
        kept.append(bytes(buf[fstart:vend]))
    if external:
        raise _ExternalData
    if raw is None or name is None or not is_weight(data_type, raw[1]):
        return None
    return b"".join(kept), name, raw


class FileWeights:
    """The initializers left out of the message: name -> array, read from
    the file when asked (each read is a fresh array)."""

    def __init__(self, path, spans):
        self.path = os.fspath(path)
        self._spans = spans           # name -> (offset, length)
        self._meta = {}               # name -> (dtype, shape), from the parsed message
        self._pinned = {}
        stat = os.stat(self.path)
        self._identity = (stat.st_size, stat.st_mtime_ns)

    def describe(self, initializers):
        """Record dtype and shape of every left-out initializer, checking that
        its raw_data has the bytes they need."""
        for t in initializers:
            if t.name not in self._spans:
                continue
            dtype = _readable(t.data_type)
            if dtype is None:
                raise ValueError(f"initializer {t.name!r}: raw_data of data type {t.data_type} "
                                 f"is not readable")
            shape = tuple(int(d) for d in t.dims)
            need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if need != self._spans[t.name][1]:
                raise ValueError(f"initializer {t.name!r}: raw_data has "
                                 f"{self._spans[t.name][1]} bytes, its shape {list(shape)} and "
                                 f"type need {need}")
            self._meta[t.name] = (dtype, shape)

    def __contains__(self, name):
        return name in self._meta

    @property
    def names(self):
        """The initializers whose data is left in the file."""
        return frozenset(self._meta)

    def read(self, name):
        if name in self._pinned:
            return self._pinned[name]
        dtype, shape = self._meta[name]
        offset, length = self._spans[name]
        self._check_unchanged()
        out = np.empty(shape, dtype)
        with open(self.path, "rb") as f:
            f.seek(offset)
            if f.readinto(memoryview(out).cast("B")) != length:
                raise ValueError(f"the model file {self.path} ended inside initializer "
                                 f"{name!r}")
        return out

    def read_rows(self, name, start, stop):
        """Rows [start, stop) of initializer `name` (along its first axis), read
        alone: a classifier's matrix packed a slice at a time is never whole in
        memory beside its packed copy (VGG's 25088 x 4096, 411 MB)."""
        dtype, shape = self._meta[name]
        if name in self._pinned:
            return self._pinned[name][start:stop]
        if not 0 <= start <= stop <= shape[0]:
            raise ValueError(f"initializer {name!r}: rows {start}:{stop} of {shape[0]}")
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        offset = self._spans[name][0]
        self._check_unchanged()
        out = np.empty((stop - start,) + tuple(shape[1:]), dtype)
        with open(self.path, "rb") as f:
            f.seek(offset + start * row)
            if f.readinto(memoryview(out).cast("B")) != (stop - start) * row:
                raise ValueError(f"the model file {self.path} ended inside initializer "
                                 f"{name!r}")
        return out

    def _check_unchanged(self):
        stat = os.stat(self.path)
        if (stat.st_size, stat.st_mtime_ns) != self._identity:
            raise ValueError(f"the model file {self.path} changed after prepare read it; "
                             f"prepare the model again")

    def pin(self):
        """Read every weight now: for models whose packing waits for the first
        run's input shape, so they do not depend on the file afterwards."""
        for name in self._meta:
            self._pinned.setdefault(name, self.read(name))


class _FileBytes:
    """The bytes of an open file, indexed and sliced like a bytes object but
    read on demand in small chunks: the walk touches each field's header
    only.  Not a memory map: on a file system that caches files in large
    folios (ext4 on Linux 6.x) each touch of a mapping maps the whole folio,
    and walking ConvNeXt-tiny's 111 MB file that way put 60 MB of it into
    the process's peak RSS."""
    CHUNK = 4096
    KEEP = 64   # chunks cached; the walk moves forward

    def __init__(self, f):
        self._f = f
        self._size = os.fstat(f.fileno()).st_size
        self._chunks = {}

    def __len__(self):
        return self._size

    def _read(self, start, stop):
        self._f.seek(start)
        return self._f.read(stop - start)

    def _chunk(self, k):
        c = self._chunks.get(k)
        if c is None:
            if len(self._chunks) >= self.KEEP:
                self._chunks.clear()
            c = self._chunks[k] = self._read(k * self.CHUNK, min(self._size, (k + 1) * self.CHUNK))
        return c

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self._size)
            if step != 1:
                raise ValueError("_FileBytes slices take step 1")
            return self._read(start, max(start, stop))
        if not 0 <= key < self._size:
            raise IndexError("read past the end of the file")
        return self._chunk(key // self.CHUNK)[key % self.CHUNK]


def load_without_weights(path):
    """(ModelProto whose large initializers have no raw_data, FileWeights
    reading them) -- or (onnx.load(path), None) where this reader does not
    apply: a big-endian host, external data, or nothing worth leaving out."""
    if sys.byteorder != "little":   # raw_data is little-endian; onnx.load swaps it
        return onnx.load(path), None
    try:
        with open(path, "rb") as f:
            buf = _FileBytes(f)
            model_parts, graph_parts, spans = [], [], {}
            for number, wire, fstart, vstart, vend in _fields(buf, 0, len(buf)):
                if number != _MODEL_GRAPH or wire != 2:
                    model_parts.append(buf[fstart:vend])
                    continue
                for gnum, gwire, gfstart, gvstart, gvend in _fields(buf, vstart, vend):
                    light = (_tensor_without_raw_data(buf, gvstart, gvend)
                             if gnum == _GRAPH_INITIALIZER and gwire == 2 else None)
                    if light is None or light[1] in spans:
                        graph_parts.append(buf[gfstart:gvend])
                        continue
                    tensor, name, span = light
                    spans[name] = span
                    graph_parts.append(_length_delimited(_GRAPH_INITIALIZER, tensor))
                model_parts.append(_length_delimited(_MODEL_GRAPH, b"".join(graph_parts)))
    except (ValueError, IndexError, _ExternalData):   # onnx.load reads those or says why
        return onnx.load(path), None
    if not spans:
        return onnx.load(path), None
    model = onnx.load_from_string(b"".join(model_parts))
    weights = FileWeights(path, spans)
    weights.describe(model.graph.initializer)
    return model, weights
