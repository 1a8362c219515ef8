"""Frame preparation identical to the official test path: ResizeShortestEdge with Pillow-exact bilinear
resizing of uint8 images (RGB and depth alike), pad bottom/right, 0..255 floats (normalization is in
the graph)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .resize import pil_bilinear_resize_u8, shortest_edge_size

__all__ = ["InputError", "PreparedFrame", "prepare_frame", "to_rgb_u8", "to_depth_u8"]


class InputError(ValueError):
    """A frame the runtime cannot use; the message says what is wrong."""


@dataclass
class PreparedFrame:
    """Network inputs for one frame plus the sizes post-processing needs."""

    rgb: np.ndarray  # float32 [3,H,W]
    depth: np.ndarray  # float32 [1,H,W]
    resized_hw: tuple[int, int]  # valid region inside the padded input
    original_hw: tuple[int, int]


def to_rgb_u8(img: np.ndarray, bgr: bool = False) -> np.ndarray:
    """uint8 [H,W,3] RGB from gray [H,W], [H,W,1], RGB(A) or BGR(A) input."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise InputError(f"rgb must be uint8 (0..255), got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise InputError(f"rgb must be [H,W], [H,W,1], [H,W,3] or [H,W,4], got shape {img.shape}")
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1] if bgr else img)


def to_depth_u8(depth: np.ndarray) -> np.ndarray:
    """uint8 [H,W] depth in the data sets' 0..255 convention. An 8-bit depth map is used as is; other
    dtypes must be converted by the caller (see the README's depth section)."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] in (1, 3, 4):
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise InputError(f"depth must be [H,W] (or [H,W,C] gray), got shape {depth.shape}")
    if depth.dtype != np.uint8:
        raise InputError(f"depth must be an 8-bit map (uint8), got {depth.dtype}")
    return depth


def prepare_frame(rgb: np.ndarray, depth: np.ndarray, short: int = 320, max_size: int = 480,
                  pad_hw: tuple[int, int] | None = None, divisor: int = 32, bgr: bool = False) -> PreparedFrame:
    """Resize both maps like the official test mapper and pad to ``pad_hw`` (or a multiple of ``divisor``)."""
    rgb = to_rgb_u8(rgb, bgr)
    depth = to_depth_u8(depth)
    h0, w0 = rgb.shape[:2]
    if min(h0, w0) < 32:
        raise InputError(f"image too small: {h0}x{w0} (at least 32 px per side)")
    if depth.shape != (h0, w0):
        raise InputError(f"depth {depth.shape} and rgb {(h0, w0)} sizes differ")
    h, w = shortest_edge_size(h0, w0, short, max_size)
    rgb_r = pil_bilinear_resize_u8(rgb, (h, w))
    depth_r = pil_bilinear_resize_u8(depth, (h, w))
    H, W = pad_hw if pad_hw else (-(-h // divisor) * divisor, -(-w // divisor) * divisor)
    if h > H or w > W:
        raise InputError(f"resized frame {h}x{w} does not fit the model's static input {H}x{W}")
    rgb_p = np.zeros((3, H, W), np.float32)
    rgb_p[:, :h, :w] = rgb_r.transpose(2, 0, 1)
    depth_p = np.zeros((1, H, W), np.float32)
    depth_p[0, :h, :w] = depth_r
    return PreparedFrame(rgb_p, depth_p, (h, w), (h0, w0))
