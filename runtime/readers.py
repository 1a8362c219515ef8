"""The one RGB reader and the one depth reader of calibnet (infer, eval, train, bench, analysis, serving).

Both read the file the way the official data mapper does: detectron2's ``read_image`` opens it with Pillow
and applies the EXIF orientation tag before anything else (``ImageOps.exif_transpose`` gives the same
pixels), so a phone photo stored sideways comes out upright, and its depth map with it.

- :func:`read_rgb`: uint8 [H,W,3] in RGB order (gray, palette, RGBA... converted to RGB, as
  ``read_image(path, format="RGB")``).
- :func:`read_depth`: the map as stored, for :func:`calibnet.runtime.depth.depth_to_u8` to convert:
  8-bit images give uint8 [H,W] (a gray map saved as RGB gives its first channel, the official mapper's
  gray-as-RGB reading); 16-bit PNGs give uint16, 32-bit integer images int32, float TIFFs float32; a
  ``.npy`` file gives its array. Files Pillow cannot decode (e.g. multi-channel float TIFF, EXR where
  OpenCV has it enabled) are read with OpenCV, unchanged.

A missing or unreadable file is an :class:`~calibnet.runtime.errors.InputError` whose message names the
file. This module does not import torch.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

__all__ = ["read_depth", "read_rgb"]

#: Pillow modes of maps with more than 8 bits per pixel (kept as stored, never clipped to 8 bits)
_WIDE_MODES = {"I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16, "I;16N": np.uint16, "I": np.int32,
               "F": np.float32}


def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")


def _open(path: Path, what: str) -> Image.Image:
    """The decoded image with its EXIF orientation applied."""
    _check_file(path, what)
    try:
        img = Image.open(path)
        img.load()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from None
    return ImageOps.exif_transpose(img) or img


def read_rgb(path: str | Path) -> np.ndarray:
    """uint8 [H,W,3] RGB image of a file, EXIF orientation applied; :class:`InputError` naming the file."""
    return np.array(_open(Path(path), "image").convert("RGB"))


def read_depth(path: str | Path) -> np.ndarray:
    """A depth map as stored (uint8, uint16, int32 or float32 [H,W]; a ``.npy`` file's array), EXIF
    orientation applied; :class:`InputError` naming the file if it is missing or unreadable."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        _check_file(path, "depth map")
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read depth map {path}: {exc}") from None
    try:
        img = _open(path, "depth map")
    except InputError:
        if not path.is_file():
            raise
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # formats Pillow lacks (multi-channel float TIFF, EXR)
        if arr is None or arr.size == 0:
            raise
        return arr if arr.ndim == 2 else arr[:, :, 0]
    if img.mode in _WIDE_MODES:
        return np.asarray(img, dtype=_WIDE_MODES[img.mode])
    return np.array(img.convert("RGB"))[:, :, 0].copy()
