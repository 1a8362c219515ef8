"""Reading RGB images and 8-bit depth maps as the official data mappers do (Pillow, EXIF orientation).

detectron2's ``read_image(path, format="RGB")`` opens the file with Pillow, applies the EXIF
orientation and converts to RGB; the official code reads depth maps the same way (a gray PNG becomes
three equal channels). Here depth is returned as one channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .registry import DatasetError

__all__ = ["read_depth", "read_rgb"]


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        img = Image.open(path)
        img.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc}") from None
    return ImageOps.exif_transpose(img) or img


def read_rgb(path: str | Path) -> np.ndarray:
    """uint8 [H,W,3] RGB; :class:`DatasetError` naming the file if it is missing or unreadable."""
    return np.array(_open(Path(path), "image").convert("RGB"))


def read_depth(path: str | Path) -> np.ndarray:
    """uint8 [H,W] depth (near = dark, far = bright, as in the data sets). 16-bit or float maps are an error: the
    model was trained on 8-bit maps, and their scaling is the user's decision."""
    img = _open(Path(path), "depth map")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise DatasetError(f"{path}: depth must be an 8-bit image (0..255, near = dark), got mode {img.mode}")
    return np.array(img.convert("RGB"))[:, :, 0].copy()
