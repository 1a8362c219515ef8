"""Read an ONNX file's ``metadata_props`` without the ``onnx`` package or an inference session.

Scans the top level of the ``ModelProto`` protobuf message (memory-mapped: the graph and its weights are
skipped, never parsed) for field 14, ``metadata_props`` (``StringStringEntryProto``: key = field 1, value =
field 2). Used to derive ONNX Runtime GPU provider options (TensorRT profile shapes) before the session
exists.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["read_metadata_props"]

_METADATA_PROPS = 14


def _varint(buf: mmap.mmap | bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _length_delimited(buf: mmap.mmap | bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of the length-delimited fields of the message in ``buf[start:end]``;
    other fields are skipped."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated length-delimited field")
            yield field, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def read_metadata_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{key: value}`` of the model's ``metadata_props``; ValueError if the file is not an ONNX model."""
    if Path(path).stat().st_size == 0:
        raise ValueError(f"{path}: empty file")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        try:
            props: dict[str, str] = {}
            for field, a, b in _length_delimited(mm, 0, len(mm)):
                if field != _METADATA_PROPS:
                    continue
                entry = {f2: mm[a2:b2].decode("utf-8") for f2, a2, b2 in _length_delimited(mm, a, b)}
                props[entry.get(1, "")] = entry.get(2, "")
            return props
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable ONNX model ({exc})") from None
