"""Which operators an ONNX file uses, read straight from its protobuf bytes (no ``onnx`` package needed).

The runtime must know whether a graph is made only of standard ONNX operators (what TensorRT's parser
takes) or holds ONNX Runtime's fused ``com.microsoft`` kernels, and it must not import ``onnx`` for
that.  An ONNX file is a ``ModelProto``; its graph's nodes carry ``op_type`` and ``domain`` as plain
strings, so a small reader of the protobuf wire format finds them while skipping the weights by their
length prefix (a full-size model is scanned in milliseconds, the weights are never copied).
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Iterator

from .errors import BundleError

#: Operator domains that are standard ONNX (the empty string is the default domain).
STANDARD_DOMAINS: frozenset[str] = frozenset({"", "ai.onnx"})

# Field numbers of the ONNX protobuf messages read here (onnx/onnx.proto).
_MODEL_GRAPH = 7
_GRAPH_NODE = 1
_NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 4, 5, 7
_ATTR_GRAPH, _ATTR_GRAPHS = 6, 11


def _fields(buf: memoryview | mmap.mmap, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end or varint value) of each field in buf[start:end]."""
    pos = start

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            if pos >= end:
                raise ValueError("truncated varint")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    while pos < end:
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, pos, varint()
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length = varint()
            if pos + length > end:
                raise ValueError("length-delimited field runs past its message")
            yield field, wire, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _graph_ops(buf: memoryview | mmap.mmap, start: int, end: int, found: set[tuple[str, str]]) -> None:
    for field, wire, lo, hi in _fields(buf, start, end):
        if field != _GRAPH_NODE or wire != 2:
            continue
        op_type = domain = ""
        for nfield, nwire, nlo, nhi in _fields(buf, lo, hi):
            if nwire != 2:
                continue
            if nfield == _NODE_OP_TYPE:
                op_type = bytes(buf[nlo:nhi]).decode("utf-8")
            elif nfield == _NODE_DOMAIN:
                domain = bytes(buf[nlo:nhi]).decode("utf-8")
            elif nfield == _NODE_ATTRIBUTE:  # control flow (If, Loop, Scan) holds sub-graphs
                for afield, awire, alo, ahi in _fields(buf, nlo, nhi):
                    if awire == 2 and afield in (_ATTR_GRAPH, _ATTR_GRAPHS):
                        _graph_ops(buf, alo, ahi, found)
        found.add((domain, op_type))


def graph_ops(path: Path) -> frozenset[tuple[str, str]]:
    """Every ``(domain, op_type)`` used by the ONNX model at ``path``, sub-graphs included."""
    path = Path(path)
    found: set[tuple[str, str]] = set()
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for field, wire, lo, hi in _fields(buf, 0, len(buf)):
                if field == _MODEL_GRAPH and wire == 2:
                    _graph_ops(buf, lo, hi, found)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read the operators of {path}: {exc}; is it an ONNX model? Re-export the bundle") from exc
    if not found:
        raise BundleError(f"{path} holds no graph nodes; is it an ONNX model? Re-export the bundle")
    return frozenset(found)


def nonstandard_ops(ops: frozenset[tuple[str, str]] | set[tuple[str, str]]) -> list[str]:
    """The operators outside standard ONNX, as ``domain.op_type``, sorted."""
    return sorted(f"{domain}.{op}" for domain, op in ops if domain not in STANDARD_DOMAINS)
