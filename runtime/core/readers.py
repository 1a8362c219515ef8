"""The one RGB reader and the one depth reader of calibnet (infer, eval, train, bench, analysis, serving).

Both read a file as the official data mapper does (detectron2's ``read_image``: Pillow, then the EXIF
orientation, which ``ImageOps.exif_transpose`` applies identically). :func:`read_rgb` gives uint8 [H,W,3] RGB;
:func:`read_depth` gives the map as stored for :func:`calibnet.runtime.core.depth.depth_to_u8`: uint8 for 8-bit
images (the first channel of a gray map saved as RGB), uint16 / int32 / float32 for 16-bit, 32-bit and float
images, a ``.npy`` file's array, and OpenCV's reading of what Pillow cannot decode (multi-channel float TIFF).
Both take a path or the bytes of an encoded file (the served model's requests). A missing or unreadable input
is an :class:`~calibnet.runtime.core.errors.InputError` naming it. No torch.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

__all__ = ["read_depth", "read_rgb"]

#: Pillow modes of maps with more than 8 bits per pixel (kept as stored, never clipped to 8 bits)
_WIDE_MODES = {"I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16, "I;16N": np.uint16, "I": np.int32,
               "F": np.float32}


def _source(src: str | Path | bytes, what: str) -> tuple[Path | io.BytesIO, str]:
    """What Pillow / numpy read for ``src`` (a file, or an encoded file's bytes) and its name in an error."""
    if isinstance(src, bytes):
        return io.BytesIO(src), f"({len(src)} bytes)"
    path = Path(src)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return path, str(path)


def _open(f: Path | io.BytesIO, name: str, what: str) -> Image.Image:
    """The decoded image with its EXIF orientation applied."""
    try:
        img = Image.open(f)
        img.load()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"cannot read {what} {name}: {exc}") from None
    return ImageOps.exif_transpose(img) or img


def read_rgb(src: str | Path | bytes) -> np.ndarray:
    """uint8 [H,W,3] RGB image of a file or of an encoded file's bytes, EXIF orientation applied;
    :class:`InputError` naming the input."""
    return np.array(_open(*_source(src, "image"), "image").convert("RGB"))


def read_depth(src: str | Path | bytes) -> np.ndarray:
    """A depth map as stored (uint8, uint16, int32 or float32 [H,W]; a ``.npy`` file's array), EXIF
    orientation applied, of a file or of an encoded file's bytes (``.npy`` ones by their magic bytes);
    :class:`InputError` naming the input if it is missing or unreadable."""
    f, name = _source(src, "depth map")
    npy = src.startswith(b"\x93NUMPY") if isinstance(src, bytes) else Path(src).suffix.lower() == ".npy"
    if npy:
        try:
            return np.asarray(np.load(f, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read depth map {name}: {exc}") from None
    try:
        img = _open(f, name, "depth map")
    except InputError:
        log = cv2.utils.logging
        level = log.getLogLevel()
        log.setLogLevel(log.LOG_LEVEL_SILENT)  # a corrupt file is our one-line InputError, not OpenCV's chatter
        try:  # formats Pillow lacks (multi-channel float TIFF, EXR)
            if isinstance(src, bytes):
                arr = cv2.imdecode(np.frombuffer(src, np.uint8), cv2.IMREAD_UNCHANGED) if src else None
            else:
                arr = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        finally:
            log.setLogLevel(level)
        if arr is None or arr.size == 0:
            raise
        return arr if arr.ndim == 2 else arr[:, :, 0]
    if img.mode in _WIDE_MODES:
        return np.asarray(img, dtype=_WIDE_MODES[img.mode])
    return np.array(img.convert("RGB"))[:, :, 0].copy()
