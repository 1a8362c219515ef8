"""ROS image messages -> arrays: the one decoder of sensor_msgs/Image and sensor_msgs/CompressedImage, for bag
sources and for a ROS 2 node alike (any object with the message's fields: rosbags, rclpy or a plain namespace).

Colour comes out as uint8 [H,W,3] RGB; depth as float32 [H,W] metres (REP 118: ``16UC1``/``mono16`` in
millimetres, ``32FC1`` in metres; 0 and NaN are "no reading" and stay invalid).

- ``sensor_msgs/Image``: colour ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``; depth ``16UC1``, ``mono16``,
  ``32FC1``. The row stride ``step`` may be larger than width x bytes per pixel (padded rows); ``is_bigendian``
  is honoured. Sizes come from the message's header and are checked (the input limits of
  :mod:`calibnet.runtime.core.limits`, step, data length) before anything is allocated: the pixels are a view of
  the message's bytes until the one conversion copy.
- ``sensor_msgs/CompressedImage``: colour ``jpeg``/``png`` (image_transport's "compressed", any format string),
  decoded by the runtime's one reader (:func:`~calibnet.runtime.core.readers.read_rgb`, within the same limits); depth
  ``compressedDepth`` PNG (the 12-byte header of compressed_depth_image_transport, then a 16-bit PNG: millimetres
  for ``16UC1``, quantised inverse depth for ``32FC1``).

Anything else is an :class:`~calibnet.runtime.core.errors.InputError` naming the message and the encodings
that are supported. No torch.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ...core.errors import InputError
from ...core.limits import InputLimits
from ...core.readers import read_depth, read_rgb

__all__ = ["COLOR_ENCODINGS", "DEPTH_ENCODINGS", "decode_color", "decode_depth", "encoding", "image_kind",
           "stamp_ns", "to_rgb"]

#: colour encodings -> channels
COLOR_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
#: depth encodings -> (dtype, metres per unit)
DEPTH_ENCODINGS = {"16UC1": (np.uint16, 1e-3), "mono16": (np.uint16, 1e-3), "32FC1": (np.float32, 1.0)}
_PNG = b"\x89PNG\r\n\x1a\n"
_DEPTH_HEADER = struct.Struct("<iff")  # compressed_depth_image_transport ConfigHeader: format, depthQuantA, depthQuantB


def stamp_ns(header: Any) -> int:
    """A message header's stamp in nanoseconds (ROS 2 ``sec``/``nanosec``; ROS 1 as rosbags reads it)."""
    t = header.stamp
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def _compressed(msg: Any) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def encoding(msg: Any) -> str:
    """An Image's ``encoding`` or a CompressedImage's ``format``."""
    return str(msg.format if _compressed(msg) else msg.encoding)


def image_kind(msg: Any) -> str | None:
    """``"color"``, ``"depth"`` or None (an encoding calibnet does not read) of an Image / CompressedImage."""
    enc = encoding(msg)
    if _compressed(msg):
        return "depth" if "compressedDepth" in enc or enc.split(";")[0].strip() in DEPTH_ENCODINGS else "color"
    return "color" if enc in COLOR_ENCODINGS else "depth" if enc in DEPTH_ENCODINGS else None


def _pixels(msg: Any, channels: int, dtype: Any, limits: InputLimits, what: str) -> np.ndarray:
    """[H,W,C] view of a raw Image's pixels, after checking its header against ``limits`` and its data."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    limits.check_size(w, h, what)
    dt = np.dtype(dtype).newbyteorder(">" if int(msg.is_bigendian) else "<")
    row = w * channels * dt.itemsize
    buf = np.frombuffer(msg.data, np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data.view(np.uint8)
    need = (h - 1) * step + row
    if step < row or buf.size < need:
        raise InputError(f"{what}: {msg.encoding} {w}x{h} needs step >= {row} and {need} bytes of data, "
                         f"got step {step} and {buf.size} bytes")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1), writeable=False)
    return rows.view(dt).reshape(h, w, channels)


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """uint8 [H,W,3] RGB (a new contiguous array) of 8-bit pixels [H,W,C] in a colour encoding (rgb8, bgr8, rgba8,
    bgra8, mono8; RealSense's y8 too)."""
    if encoding in ("rgb8", "rgba8"):
        return np.ascontiguousarray(pixels[:, :, :3])
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    if encoding in ("mono8", "y8"):
        return np.ascontiguousarray(np.repeat(pixels[:, :, :1], 3, axis=2))
    raise InputError(f"colour encoding {encoding!r} is not supported (use {', '.join(COLOR_ENCODINGS)})")


def _decoded(read: Any, data: bytes, limits: InputLimits, what: str) -> np.ndarray:
    """``read(data, limits)`` (the runtime's reader: sized from the header first), its refusal naming ``what``."""
    try:
        return read(data, limits)
    except InputError as exc:
        raise type(exc)(f"{what}: {exc}") from None


def decode_color(msg: Any, limits: InputLimits, what: str = "colour image") -> np.ndarray:
    """uint8 [H,W,3] RGB of a colour Image or CompressedImage message within ``limits`` (see the module doc)."""
    if _compressed(msg):
        return _decoded(read_rgb, bytes(msg.data), limits, what)
    enc = str(msg.encoding)
    if enc not in COLOR_ENCODINGS:
        raise InputError(f"{what}: encoding {enc!r} is not a colour encoding calibnet reads "
                         f"({', '.join(COLOR_ENCODINGS)})")
    return to_rgb(_pixels(msg, COLOR_ENCODINGS[enc], np.uint8, limits, what), enc)


def _compressed_depth(msg: Any, limits: InputLimits, what: str) -> np.ndarray:
    fmt = str(msg.format)
    enc = fmt.split(";")[0].strip()
    if enc not in DEPTH_ENCODINGS:
        raise InputError(f"{what}: compressed depth format {fmt!r}: calibnet reads 16UC1 and 32FC1 depth")
    data = bytes(msg.data)
    if "compressedDepth" not in fmt:  # a plain 16-bit PNG through the "compressed" transport
        png, quant = data, None
    elif data[_DEPTH_HEADER.size:_DEPTH_HEADER.size + len(_PNG)] == _PNG:
        _, qa, qb = _DEPTH_HEADER.unpack_from(data)
        png, quant = data[_DEPTH_HEADER.size:], (qa, qb)
    else:
        raise InputError(f"{what}: compressedDepth data is not a PNG after its 12-byte header (format {fmt!r}; "
                         "calibnet reads the png codec, not rvl)")
    stored = _decoded(read_depth, png, limits, what)
    if enc != "32FC1":
        return stored.astype(np.float32) * np.float32(DEPTH_ENCODINGS[enc][1])
    if quant is None:
        return stored.astype(np.float32)
    inv = stored.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0: no reading
        return np.where(inv > 0, np.float32(quant[0]) / (inv - np.float32(quant[1])), np.float32(np.nan))


def decode_depth(msg: Any, limits: InputLimits, what: str = "depth image") -> np.ndarray:
    """float32 [H,W] depth in metres of a depth Image or CompressedImage message within ``limits`` (see the module
    doc)."""
    if _compressed(msg):
        return _compressed_depth(msg, limits, what)
    enc = str(msg.encoding)
    if enc not in DEPTH_ENCODINGS:
        raise InputError(f"{what}: encoding {enc!r} is not a depth encoding calibnet reads "
                         f"({', '.join(DEPTH_ENCODINGS)})")
    dtype, scale = DEPTH_ENCODINGS[enc]
    plane = _pixels(msg, 1, dtype, limits, what)[:, :, 0]
    out = plane.astype(np.float32)
    if scale != 1.0:
        out *= np.float32(scale)
    return out
