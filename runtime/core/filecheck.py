"""What is wrong with a model / checkpoint file, from its bytes, and an exception as one line: the pieces
:func:`calibnet.cli.app.run_cli` uses so that every command ends an error in one line naming the file.

:func:`file_problem` looks at a file without loading it: missing, empty, a folder, an ONNX file that does not
parse as a ``ModelProto`` (random bytes, truncated), a PyTorch checkpoint that is not a complete zip /
pickle, a TensorRT engine too small to be one. This module imports neither torch nor onnx.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .onnx_props import _length_delimited, _varint
from .targets import check_file

__all__ = ["file_problem", "one_line", "onnx_problem", "checkpoint_problem", "engine_problem"]

#: ModelProto field numbers (onnx.proto3): ir_version 1 .. configuration 26
_MODEL_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26}
MAX_LEN = 400


def onnx_problem(path: Path) -> str | None:
    """What is wrong with an ONNX file: it must parse as a ``ModelProto`` with a graph (random bytes, truncated)."""
    data = path.read_bytes()
    fields: set[int] = set()
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            field, wire = key >> 3, key & 7
            if field not in _MODEL_FIELDS:
                return f"not an ONNX model (unknown top-level protobuf field {field} at byte {pos})"
            fields.add(field)
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 2:
                length, pos = _varint(data, pos)
                if pos + length > len(data):
                    return f"truncated ONNX file (a field runs {pos + length - len(data)} bytes past the end)"
                if field == 7:
                    list(_length_delimited(data, pos, pos + length))  # the graph message parses
                pos += length
            else:
                return f"not an ONNX model (protobuf wire type {wire} at byte {pos})"
    except ValueError as exc:
        return f"not an ONNX model or truncated ({exc})"
    if 7 not in fields:
        return "not an ONNX model (no graph)"
    return None


def checkpoint_problem(path: Path) -> str | None:
    """What is wrong with a PyTorch / detectron2 checkpoint: a complete ``torch.save`` zip or a pickle."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            return f"truncated or corrupt checkpoint (zip archive: {exc})"
        if not any(n.endswith("data.pkl") for n in names):
            return "a zip archive but not a PyTorch checkpoint (no data.pkl)"
        return None
    if head[:1] == b"\x80":  # pickle protocol 2+ (legacy torch.save, detectron2 .pkl)
        return None
    return "not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"


def engine_problem(path: Path) -> str | None:
    """What is wrong with a TensorRT engine, judged by its size only (its format is TensorRT's own)."""
    size = path.stat().st_size
    return f"too small to be a TensorRT engine ({size} bytes)" if size < 1024 else None


def file_problem(path: str | Path | None) -> str | None:
    """What is wrong with an input file, judged from its bytes (None: nothing found): missing, a folder, empty,
    then the check its kind names in the table of targets (:func:`~calibnet.runtime.core.targets.check_file`)."""
    if path is None or str(path) == "":
        return None
    p = Path(path)
    if not p.exists():
        return "file not found"
    if p.is_dir():
        return "a folder, not a file"
    try:
        if p.stat().st_size == 0:
            return "empty file (0 bytes)"
        return check_file(p)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (type name when it has none), at most ~400 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (KeyError, AttributeError, TypeError, IndexError, AssertionError)) or not str(exc).strip():
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= MAX_LEN else text[:MAX_LEN - 3] + "..."
