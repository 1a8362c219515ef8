"""Frame preparation identical to the official test path: ResizeShortestEdge with Pillow-exact bilinear
resizing of uint8 images (RGB and depth alike), pad bottom/right, 0..255 floats (normalization is in
the graph).

Accepted input
--------------
- RGB: uint8 [H,W,3] RGB (or BGR with ``bgr=True``), [H,W,4] RGBA/BGRA (alpha dropped), gray [H,W] or
  [H,W,1] (repeated to 3 channels).
- Depth: any form :mod:`calibnet.runtime.core.depth` reads (8-bit maps as is, 16-bit / float metric depth or
  disparity converted), see :class:`~calibnet.runtime.core.depth.DepthFormat`.
- A depth map of another size than the RGB image is resized to it (bilinear, after conversion to 8 bits)
  with an :class:`InputWarning`, or refused with an :class:`InputError` when ``strict=True``.
- Frames under 32 px per side, empty arrays, wrong dtypes or channel counts: :class:`InputError`.

Invariants of a :class:`PreparedFrame` (checked by the property tests)
----------------------------------------------------------------------
``rgb`` float32 [3,H,W] and ``depth`` float32 [1,H,W] with H, W multiples of the divisor (or the model's
static shape), integral values in 0..255, zero outside ``resized_hw``; ``resized_hw`` = detectron2's
ResizeShortestEdge size of ``original_hw``, within (H, W); ``original_hw`` = the RGB image's (H0, W0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np

from .depth import DepthFormat, depth_to_u8, invalid_share
from .errors import InputError, InputWarning
from .resize import pil_bilinear_resize_u8, shortest_edge_size

__all__ = ["InputError", "InputWarning", "PreparedFrame", "prepare_frame", "to_rgb_u8", "MIN_SIDE"]

MIN_SIDE = 32


@dataclass
class PreparedFrame:
    """Network inputs for one frame plus the sizes post-processing needs."""

    rgb: np.ndarray  # float32 [3,H,W]
    depth: np.ndarray  # float32 [1,H,W]
    resized_hw: tuple[int, int]  # valid region inside the padded input
    original_hw: tuple[int, int]
    #: the model's 8-bit depth at the original size (for the instances' depth) and the share of invalid
    #: pixels of the depth as given (for the frame's depth health)
    depth_u8: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    invalid_share: float = float("nan")


def to_rgb_u8(img: np.ndarray, bgr: bool = False) -> np.ndarray:
    """uint8 [H,W,3] RGB from gray [H,W], [H,W,1], RGB(A) or BGR(A) input."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        hint = " (scale 16-bit images to 8 bits, e.g. img >> 8)" if img.dtype == np.uint16 else ""
        raise InputError(f"rgb must be uint8 (0..255), got {img.dtype}{hint}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise InputError(f"rgb must be [H,W], [H,W,1], [H,W,3] or [H,W,4], got shape {img.shape}")
    if img.size == 0:
        raise InputError(f"rgb image is empty (shape {img.shape})")
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1] if bgr else img)


def match_depth_size(depth_u8: np.ndarray, hw: tuple[int, int], strict: bool = False) -> np.ndarray:
    """``depth_u8`` at the RGB size ``hw``: resized (bilinear) with an :class:`InputWarning`, or an
    :class:`InputError` when ``strict``."""
    if depth_u8.shape == tuple(hw):
        return depth_u8
    msg = f"depth {depth_u8.shape[0]}x{depth_u8.shape[1]} and rgb {hw[0]}x{hw[1]} sizes differ"
    if strict:
        raise InputError(msg)
    warnings.warn(f"{msg}: depth resized to the RGB size", InputWarning, stacklevel=3)
    return cv2.resize(depth_u8, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def prepare_frame(rgb: np.ndarray, depth: np.ndarray, short: int = 320, max_size: int = 480,
                  pad_hw: tuple[int, int] | None = None, divisor: int = 32, bgr: bool = False,
                  depth_format: DepthFormat | None = None, strict: bool = False) -> PreparedFrame:
    """Resize both maps like the official test mapper and pad to ``pad_hw`` (or a multiple of ``divisor``)."""
    rgb = to_rgb_u8(rgb, bgr)
    h0, w0 = rgb.shape[:2]
    if min(h0, w0) < MIN_SIDE:
        raise InputError(f"image too small: {h0}x{w0} (at least {MIN_SIDE} px per side)")
    invalid = invalid_share(depth)
    depth = match_depth_size(depth_to_u8(depth, depth_format), (h0, w0), strict)
    h, w = shortest_edge_size(h0, w0, short, max_size)
    if min(h, w) < 1:
        raise InputError(f"image {h0}x{w0}: aspect ratio too extreme (resized to {h}x{w})")
    H, W = pad_hw if pad_hw else (-(-h // divisor) * divisor, -(-w // divisor) * divisor)
    if h > H or w > W:
        raise InputError(f"resized frame {h}x{w} does not fit the model's static input {H}x{W}")
    rgb_r = pil_bilinear_resize_u8(rgb, (h, w))
    depth_r = pil_bilinear_resize_u8(depth, (h, w))
    rgb_p = np.zeros((3, H, W), np.float32)
    rgb_p[:, :h, :w] = rgb_r.transpose(2, 0, 1)
    depth_p = np.zeros((1, H, W), np.float32)
    depth_p[0, :h, :w] = depth_r
    return PreparedFrame(rgb_p, depth_p, (h, w), (h0, w0), depth, invalid)
