"""The image readers of calibnet (infer, eval, train, bench, analysis, serving): RGB, gray and depth.

They read a file as the official data mapper does (detectron2's ``read_image``: Pillow, then the EXIF
orientation, which ``ImageOps.exif_transpose`` applies identically). :func:`read_rgb` gives uint8 [H,W,3] RGB;
:func:`read_gray` uint8 [H,W] (salient-object maps); :func:`read_depth` gives the map as stored for
:func:`calibnet.runtime.core.depth.depth_to_u8`: uint8 for 8-bit images (the first channel of a gray map saved as
RGB), uint16 / int32 / float32 for 16-bit, 32-bit and float images, a ``.npy`` file's array, and OpenCV's reading
of what Pillow cannot decode (multi-channel float TIFF, Radiance HDR, OpenEXR, PFM). All take a path or the bytes
of an encoded file (the served model's requests).

Inputs come from other people: each is sized from its header (Pillow's lazy open, the ``.npy`` header, or
:func:`header_size` for what only OpenCV decodes) and refused by :class:`~calibnet.runtime.core.limits.InputLimits`
before anything is decoded; a file larger than the byte limit is not read; Pillow opens only the formats listed in
:data:`PIL_FORMATS`, and OpenCV sees only files whose size was read from their header. A missing, unreadable,
oversized or otherwise bad input is an :class:`~calibnet.runtime.core.errors.InputError` naming it, whatever went
wrong in the decoder. No torch.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError
from .filecheck import one_line
from .limits import InputLimits, default_limits

__all__ = ["PIL_FORMATS", "header_size", "read_depth", "read_gray", "read_rgb"]

#: the only formats Pillow is asked to open (no EPS, which runs Ghostscript, nor other rarely used decoders)
PIL_FORMATS = ("PNG", "JPEG", "MPO", "TIFF", "BMP", "PPM", "WEBP")

#: Pillow modes of maps with more than 8 bits per pixel (kept as stored, never clipped to 8 bits)
_WIDE_MODES = {"I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16, "I;16N": np.uint16, "I": np.int32,
               "F": np.float32}

Source = str | Path | bytes


class _NotForPillow(InputError):
    """Pillow cannot identify or decode the file (OpenCV may: float TIFF, HDR, EXR, PFM)."""


def _source(src: Source, what: str, limits: InputLimits) -> tuple[Path | io.BytesIO, str]:
    """What Pillow / numpy read for ``src`` (a file, or an encoded file's bytes) and its name in an error; the
    byte limit is checked before anything is read."""
    if isinstance(src, (bytes, bytearray)):
        name = f"({len(src)} bytes)"
        limits.check_bytes(len(src), f"{what} {name}")
        return io.BytesIO(src), name
    path = Path(src)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    limits.check_bytes(path.stat().st_size, f"{what} {path}")
    return path, str(path)


def _pil_formats() -> tuple[str, ...]:
    """:data:`PIL_FORMATS` that this Pillow registers (Pillow 13 has no MPO opener: asking for it fails)."""
    Image.init()
    return tuple(f for f in PIL_FORMATS if f in Image.OPEN)


def _reason(exc: BaseException, name: str) -> str:
    """The decoder's error on one line, without the file's name (the message names it once)."""
    if isinstance(exc, UnidentifiedImageError):
        return f"not a {', '.join(_pil_formats())} file"
    return one_line(exc).replace(f"'{name}'", "the file").replace(name, "the file")


def _open(f: Path | io.BytesIO, name: str, what: str, limits: InputLimits) -> Image.Image:
    """The decoded image with its EXIF orientation applied; its size is checked before it is decoded."""
    try:
        img = Image.open(f, formats=_pil_formats())  # lazy: reads the header only
    except Exception as exc:  # noqa: BLE001 - unidentified, truncated header, Pillow's own bomb check ...
        raise _NotForPillow(f"cannot read {what} {name}: {_reason(exc, name)}") from None
    limits.check_size(img.width, img.height, f"{what} {name}")
    try:
        img.load()
        return ImageOps.exif_transpose(img) or img
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this input's error, never the caller's
        raise _NotForPillow(f"cannot read {what} {name}: {_reason(exc, name)}") from None


def _read_image(src: Source, limits: InputLimits | None, mode: str) -> np.ndarray:
    """The image of a file or of an encoded file's bytes in Pillow's ``mode``, EXIF orientation applied."""
    limits = limits or default_limits()
    f, name = _source(src, "image", limits)
    img = _open(f, name, "image", limits)
    try:
        return np.array(img.convert(mode))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read image {name}: {one_line(exc)}") from None


def read_rgb(src: Source, limits: InputLimits | None = None) -> np.ndarray:
    """uint8 [H,W,3] RGB image of a file or of an encoded file's bytes, EXIF orientation applied;
    :class:`InputError` naming the input (also when it exceeds ``limits``, default :func:`default_limits`)."""
    return _read_image(src, limits, "RGB")


def read_gray(src: Source, limits: InputLimits | None = None) -> np.ndarray:
    """uint8 [H,W] gray image (Pillow's luminance of a colour one), EXIF orientation applied, of a file or of an
    encoded file's bytes (e.g. a salient-object map); :class:`InputError` naming the input."""
    return _read_image(src, limits, "L")


def read_depth(src: Source, limits: InputLimits | None = None) -> np.ndarray:
    """A depth map as stored (uint8, uint16, int32 or float32 [H,W]; a ``.npy`` file's array), EXIF
    orientation applied, of a file or of an encoded file's bytes (``.npy`` ones by their magic bytes);
    :class:`InputError` naming the input if it is missing, unreadable or exceeds ``limits`` (default
    :func:`default_limits`)."""
    limits = limits or default_limits()
    f, name = _source(src, "depth map", limits)
    npy = src.startswith(b"\x93NUMPY") if isinstance(src, (bytes, bytearray)) else Path(src).suffix.lower() == ".npy"
    if npy:
        return _read_npy(f, name, limits)
    try:
        img = _open(f, name, "depth map", limits)
    except _NotForPillow as exc:
        data = bytes(src) if isinstance(src, (bytes, bytearray)) else Path(src).read_bytes()
        size = header_size(data)
        if size is None:
            raise InputError(str(exc)) from None
        return _read_cv2(data, size, name, limits)
    try:
        if img.mode in _WIDE_MODES:
            return np.asarray(img, dtype=_WIDE_MODES[img.mode])
        return np.array(img.convert("RGB"))[:, :, 0].copy()
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read depth map {name}: {one_line(exc)}") from None


def _read_cv2(data: bytes, size: tuple[int, int], name: str, limits: InputLimits) -> np.ndarray:
    """OpenCV's decoding of a file whose (width, height) ``size`` was read from its header and is checked first."""
    limits.check_size(*size, f"depth map {name}")
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)  # a corrupt file is our one-line InputError, not OpenCV's chatter
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception as exc:  # noqa: BLE001 - cv2.error, MemoryError ...
        raise InputError(f"cannot read depth map {name}: OpenCV could not decode it ({type(exc).__name__})") from None
    finally:
        log.setLogLevel(level)
    if arr is None or arr.size == 0:
        raise InputError(f"cannot read depth map {name}: OpenCV could not decode it")
    return arr if arr.ndim == 2 else arr[:, :, 0]


def _read_npy(f: Path | io.BytesIO, name: str, limits: InputLimits) -> np.ndarray:
    """A ``.npy`` file's array, its header checked (shape, dtype, data size) before the data is allocated."""
    fmt = np.lib.format
    with contextlib.nullcontext(f) if isinstance(f, io.BytesIO) else f.open("rb") as fh:
        try:
            version = fmt.read_magic(fh)
            read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version} is not supported")
            shape, _, dtype = read_header(fh)
            data_start = fh.tell()
            fh.seek(0, io.SEEK_END)
            available = fh.tell() - data_start
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot read depth map {name}: {one_line(exc)}") from None
        if dtype.hasobject or len(shape) < 2:
            raise InputError(f"cannot read depth map {name}: expected a numeric [H,W] array, got {dtype} {shape}")
        limits.check_size(int(shape[1]), int(shape[0]), f"depth map {name}")
        needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if needed > available:
            raise InputError(f"cannot read depth map {name}: its header promises {needed} bytes of data, the file has "
                             f"{available}")
        fh.seek(0)
        try:
            return np.asarray(np.load(fh, allow_pickle=False))
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot read depth map {name}: {one_line(exc)}") from None


# ------------------------------------------------------------------ sizes from headers (files only OpenCV decodes)


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the first image of a classic or BigTIFF file, from its first IFD."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None:
        return None
    magic = struct.unpack_from(order + "H", data, 2)[0]
    if magic == 42:
        ifd, count_fmt, entry_size, value_at = struct.unpack_from(order + "I", data, 4)[0], "H", 12, 8
    elif magic == 43:
        ifd, count_fmt, entry_size, value_at = struct.unpack_from(order + "Q", data, 8)[0], "Q", 20, 12
    else:
        return None
    count = struct.unpack_from(order + count_fmt, data, ifd)[0]
    first = ifd + struct.calcsize(count_fmt)
    tags: dict[int, int] = {}
    for k in range(min(int(count), 4096)):
        at = first + k * entry_size
        tag, kind = struct.unpack_from(order + "HH", data, at)
        if tag in (256, 257) and kind in (3, 4, 16):  # SHORT, LONG, LONG8
            tags[tag] = struct.unpack_from(order + {3: "H", 4: "I", 16: "Q"}[kind], data, at + value_at)[0]
    if 256 in tags and 257 in tags:
        return int(tags[256]), int(tags[257])
    return None


def _hdr_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a Radiance RGBE file: the resolution line after the header's blank line."""
    if not data.startswith(b"#?"):
        return None
    end = data.find(b"\n\n", 0, 1 << 16)
    if end < 0:
        return None
    line = data[end + 2:end + 2 + 64].split(b"\n", 1)[0].decode("ascii", "replace")
    m = re.fullmatch(r"\s*([-+])([XY])\s+(\d+)\s+([-+])([XY])\s+(\d+)\s*", line)
    if m is None or m.group(2) == m.group(5):
        return None
    dims = {m.group(2): int(m.group(3)), m.group(5): int(m.group(6))}
    return dims["X"], dims["Y"]


def _pfm_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a portable float map (``PF`` / ``Pf``, then ``W H``)."""
    m = re.match(rb"P[Ff]\s+(\d+)\s+(\d+)\s", data[:128])
    return (int(m.group(1)), int(m.group(2))) if m else None


def _exr_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an OpenEXR file: the ``dataWindow`` box of its header."""
    if not data.startswith(b"\x76\x2f\x31\x01"):
        return None
    pos = 8
    while pos < min(len(data), 1 << 20):
        name_end = data.index(b"\0", pos)
        if name_end == pos:
            return None  # end of the header without a dataWindow
        type_end = data.index(b"\0", name_end + 1)
        size = struct.unpack_from("<i", data, type_end + 1)[0]
        value = type_end + 5
        if data[pos:name_end] == b"dataWindow" and data[name_end + 1:type_end] == b"box2i":
            x0, y0, x1, y1 = struct.unpack_from("<4i", data, value)
            return x1 - x0 + 1, y1 - y0 + 1
        pos = value + max(size, 0)
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a TIFF, Radiance HDR, PFM or OpenEXR file from its header; None for other data (which
    is then never handed to OpenCV)."""
    for parse in (_tiff_size, _hdr_size, _pfm_size, _exr_size):
        try:
            size = parse(data)
        except (struct.error, ValueError, KeyError):
            size = None
        if size is not None:
            return size
    return None
