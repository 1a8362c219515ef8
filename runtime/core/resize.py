"""Resizing that reproduces the official pipeline bit for bit (no torch).

- :func:`pil_bilinear_resize_u8`: Pillow's ``Image.resize(..., BILINEAR)`` for uint8 images, which the
  official ResizeShortestEdge uses: a triangle filter widened by the scale factor when downscaling
  (antialiasing), 22-bit fixed-point coefficients, horizontal pass then vertical, rounding to uint8 between.
  Pillow itself does it (the fast path: a few ms per frame); :func:`pil_bilinear_resize_u8_numpy` is a sparse
  re-implementation of the same fixed-point arithmetic (channel counts Pillow lacks).
- :func:`torch_bilinear_matrix`: the matrix of ``F.interpolate(mode="bilinear", align_corners=False)``
  along one axis, so several interpolations and crops compose into one matrix product.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = ["pil_bilinear_resize_u8", "pil_bilinear_resize_u8_numpy", "pil_bilinear_matrix", "pil_bilinear_taps",
           "torch_bilinear_matrix", "shortest_edge_size"]

_PRECISION_BITS = 32 - 8 - 2


def shortest_edge_size(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2 ResizeShortestEdge output size (new = int(old * scale + 0.5))."""
    scale = short * 1.0 / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        s = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * s, neww * s
    return int(newh + 0.5), int(neww + 0.5)


@lru_cache(maxsize=64)
def pil_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] int64 fixed-point coefficients of Pillow's bilinear resampling along one axis."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    mat = np.zeros((out_size, in_size), dtype=np.int64)  # cached: callers must not modify it
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        xs = np.arange(xmin, xmax)
        w = np.clip(1.0 - np.abs((xs - center + 0.5) / filterscale), 0.0, None)
        total = w.sum()
        if total:
            w = w / total
        fixed = np.where(w < 0, -0.5, 0.5) + w * (1 << _PRECISION_BITS)
        mat[xx, xmin:xmax] = fixed.astype(np.int64)
    return mat


@lru_cache(maxsize=64)
def pil_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse form of :func:`pil_bilinear_matrix`: (indices [out, T] int64, coefficients [out, T] float64),
    T = the widest filter; padded taps have coefficient 0."""
    mat = pil_bilinear_matrix(in_size, out_size)
    nz = mat != 0
    taps = max(int(nz.sum(1).max()), 1)
    first = np.where(nz.any(1), nz.argmax(1), 0)
    idx = np.minimum(first[:, None] + np.arange(taps)[None], in_size - 1)
    coef = np.take_along_axis(mat, idx, 1).astype(np.float64)
    coef[first[:, None] + np.arange(taps)[None] >= in_size] = 0.0  # clamped duplicates carry no weight
    return idx, coef


def _apply_u8(in_size: int, out_size: int, img: np.ndarray, axis: int) -> np.ndarray:
    # float64 sums of 8-bit pixels times 22-bit coefficients are exact integers (< 2**53): Pillow's
    # fixed-point result, one gathered multiply-add per filter tap
    idx, coef = pil_bilinear_taps(in_size, out_size)
    moved = np.moveaxis(img, axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    acc = np.full((out_size, flat.shape[1]), float(1 << (_PRECISION_BITS - 1)))
    for t in range(idx.shape[1]):
        acc += coef[:, t, None] * flat[idx[:, t]]
    out = np.clip(np.floor(acc / (1 << _PRECISION_BITS)), 0, 255).astype(np.uint8)
    return np.moveaxis(out.reshape((out_size,) + moved.shape[1:]), 0, axis)


def pil_bilinear_resize_u8_numpy(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Pillow's BILINEAR resize of a uint8 [H,W] or [H,W,C] image, in numpy (no Pillow needed)."""
    if img.dtype != np.uint8:
        raise TypeError(f"expected uint8, got {img.dtype}")
    h, w = img.shape[:2]
    oh, ow = out_hw
    out = img
    if ow != w:
        out = _apply_u8(w, ow, out, 1)
    if oh != h:
        out = _apply_u8(h, oh, out, 0)
    return np.ascontiguousarray(out)


def pil_bilinear_resize_u8(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 [H,W] or [H,W,C] image to ``out_hw`` exactly as Pillow's BILINEAR does
    (with Pillow; :func:`pil_bilinear_resize_u8_numpy` for channel counts Pillow lacks)."""
    if img.dtype != np.uint8:
        raise TypeError(f"expected uint8, got {img.dtype}")
    h, w = img.shape[:2]
    oh, ow = out_hw
    if (oh, ow) == (h, w):
        return np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
        return pil_bilinear_resize_u8_numpy(img, out_hw)
    squeeze = img.ndim == 3 and img.shape[2] == 1
    src = np.ascontiguousarray(img[..., 0] if squeeze else img)
    out = np.asarray(Image.fromarray(src).resize((ow, oh), Image.Resampling.BILINEAR))
    return out[..., None] if squeeze else out


@lru_cache(maxsize=64)
def torch_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] float32 weights of ``F.interpolate(bilinear, align_corners=False)`` along one axis."""
    scale = in_size / out_size
    dst = np.arange(out_size, dtype=np.float64)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    mat = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(mat, (np.arange(out_size), i0), 1.0 - frac)
    np.add.at(mat, (np.arange(out_size), i1), frac)
    return mat.astype(np.float32)
