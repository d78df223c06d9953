"""Read an ONNX file's graph inputs and output count without loading its weights.

A pack like buffalo_l holds five models (326 MB); beaver needs two. Deciding which
file is which by building an onnxruntime session for each, as insightface does, costs
seconds and hundreds of MB; walking the protobuf wire format and skipping every
weight by its length costs a millisecond or a few, whatever the file's size.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Task = Literal["detection", "recognition"]
Dim = int | str | None
"""A fixed size, a symbolic name (dynamic), or None when the file says nothing."""

# Field numbers from onnx.proto (stable since IR version 1).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_SPARSE_INITIALIZER = 5, 11, 12, 15
_TENSOR_NAME = 8
_SPARSE_VALUES = 1
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_TYPE_SHAPE = 2
_SHAPE_DIM = 1
_DIM_VALUE, _DIM_PARAM = 1, 2

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class OnnxPeekError(ValueError):
    """The bytes are not a well-formed ONNX model."""


@dataclass(frozen=True)
class TensorSignature:
    """One graph input: its name and shape."""

    name: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class OnnxSignature:
    """What insightface's model router looks at: the real inputs and how many outputs."""

    inputs: tuple[TensorSignature, ...]
    output_count: int


_Buffer = bytes | mmap.mmap


def _varint(buf: _Buffer, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise OnnxPeekError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxPeekError("varint longer than 64 bits")


def _fields(buf: _Buffer, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field, wire type, a, b)``: a varint's value in ``a``, or a byte range ``[a, b)``."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise OnnxPeekError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, value
            continue
        if wire == _LEN:
            length, pos = _varint(buf, pos, end)
            stop = pos + length
        elif wire == _FIXED64:
            stop = pos + 8
        elif wire == _FIXED32:
            stop = pos + 4
        else:
            raise OnnxPeekError(f"unsupported wire type {wire}")
        if stop > end:
            raise OnnxPeekError("field runs past the end of its message")
        yield field, wire, pos, stop
        pos = stop


def _text(buf: _Buffer, start: int, stop: int) -> str:
    return bytes(buf[start:stop]).decode("utf-8", errors="replace")


def _sub(buf: _Buffer, start: int, end: int, field: int) -> Iterator[tuple[int, int]]:
    for f, wire, a, b in _fields(buf, start, end):
        if f == field and wire == _LEN:
            yield a, b


def _tensor_name(buf: _Buffer, start: int, end: int) -> str:
    for a, b in _sub(buf, start, end, _TENSOR_NAME):
        return _text(buf, a, b)
    return ""


def _dim(buf: _Buffer, start: int, end: int) -> Dim:
    for f, wire, a, b in _fields(buf, start, end):
        if f == _DIM_VALUE and wire == _VARINT:
            return a if a < 1 << 63 else a - (1 << 64)
        if f == _DIM_PARAM and wire == _LEN:
            return _text(buf, a, b)
    return None


def _value_info(buf: _Buffer, start: int, end: int) -> TensorSignature:
    name = ""
    shape: list[Dim] = []
    for f, wire, a, b in _fields(buf, start, end):
        if f == _VALUE_NAME and wire == _LEN:
            name = _text(buf, a, b)
        elif f == _VALUE_TYPE and wire == _LEN:
            for ta, tb in _sub(buf, a, b, _TYPE_TENSOR):
                for sa, sb in _sub(buf, ta, tb, _TENSOR_TYPE_SHAPE):
                    shape = [_dim(buf, da, db) for da, db in _sub(buf, sa, sb, _SHAPE_DIM)]
    return TensorSignature(name, tuple(shape))


def _signature(buf: _Buffer) -> OnnxSignature:
    graphs = list(_sub(buf, 0, len(buf), _MODEL_GRAPH))
    if not graphs:
        raise OnnxPeekError("no graph in the file")
    start, end = graphs[-1]  # protobuf: the last occurrence of a message field wins
    initializers: set[str] = set()
    inputs: list[TensorSignature] = []
    outputs = 0
    for f, wire, a, b in _fields(buf, start, end):
        if wire != _LEN:
            continue
        if f == _GRAPH_INITIALIZER:
            initializers.add(_tensor_name(buf, a, b))
        elif f == _GRAPH_SPARSE_INITIALIZER:
            for va, vb in _sub(buf, a, b, _SPARSE_VALUES):
                initializers.add(_tensor_name(buf, va, vb))
        elif f == _GRAPH_INPUT:
            inputs.append(_value_info(buf, a, b))
        elif f == _GRAPH_OUTPUT:
            outputs += 1
    # Old exporters list every weight as a graph input too; onnxruntime hides those.
    real = tuple(i for i in inputs if i.name not in initializers)
    if not real:
        raise OnnxPeekError("the graph has no inputs")
    return OnnxSignature(real, outputs)


def peek(path: Path) -> OnnxSignature:
    """The graph inputs and output count of the ONNX file at ``path``.

    Raises OSError when the file cannot be read and OnnxPeekError when it is not ONNX.
    """
    with Path(path).open("rb") as fh:
        if fh.seek(0, 2) == 0:
            raise OnnxPeekError("the file is empty")
        # mmap: skipped weights are never read from disk.
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _signature(buf)


def route(signature: OnnxSignature) -> Task | None:
    """The task insightface's model router gives this model, for the two beaver uses."""
    if signature.output_count >= 5:
        return "detection"
    shape = signature.inputs[0].shape
    if len(shape) != 4:
        return None
    height, width = shape[2], shape[3]
    if not (isinstance(height, int) and isinstance(width, int)):
        return None
    if (height, width) in {(192, 192), (96, 96)}:  # landmarks, gender/age
        return None
    if len(signature.inputs) == 2 and (height, width) == (128, 128):  # face swapper
        return None
    if height == width and height >= 112 and height % 16 == 0:
        return "recognition"
    return None


def has_landmarks(signature: OnnxSignature) -> bool:
    """Whether an SCRFD detector outputs the five keypoints (9 or 15 outputs)."""
    return signature.output_count in {9, 15}


def fixed_spatial_size(signature: OnnxSignature) -> tuple[int, int] | None:
    """``(width, height)`` when the first input fixes both, else None (dynamic)."""
    shape = signature.inputs[0].shape
    if len(shape) == 4:
        height, width = shape[2], shape[3]
        if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
            return width, height
    return None
