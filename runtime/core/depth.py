"""Depth maps in every form a camera or a data set gives them, turned into the 8-bit map CalibNet was trained on.

The convention of the training data
-----------------------------------
CalibNet reads an 8-bit depth PNG per image (the official mapper loads it as a gray RGB image, 0..255).
In the data sets the official model was trained and tested on, the NEAR end is DARK and the far end
bright: the depth input drawn in CalibNet's own pipeline figure (the two dogs nearest to the camera are
black, the shelves behind them white), the COME15K example in its authors' repository (the nearest cyclist
darkest) and the SIP examples in the D3Net repository (the people dark, the sky and buildings bright); the
SSD depth PNGs shipped in the D3Net repository measure a mean of 30-37 inside the salient object and 105-143
outside. That is ``"near-dark"``, the default. Other RGB-D data sets (and models trained on them) may use
``"near-bright"``; the direction is an option, and a model's metadata can name its own
(``ModelMetadata.depth_direction``).

Input kinds (:class:`DepthFormat` ``kind``)
-------------------------------------------
- ``"u8"``: an 8-bit map already in the model's convention (the data sets' PNGs): used as is.
- ``"u8-inverted"``: an 8-bit map in the other convention: ``255 - d``.
- ``"metric"``: distances (16-bit millimetres from a RealSense/Kinect/Azure Kinect ``z16`` stream, or float
  metres from a stereo or monocular-metric estimator). Larger = farther.
- ``"disparity"``: inverse depth (stereo disparity, MiDaS/DPT-style relative inverse depth). Larger = nearer.
- ``"auto"`` (default): ``uint8`` -> ``"u8"``, any other integer or float dtype -> ``"metric"``.

Conversion rule (metric and disparity)
--------------------------------------
1. Valid pixels are finite and > 0 (0 is the "no reading" value of depth sensors; NaN/inf come from
   float pipelines; negative values are invalid too).
2. The range [near, far] is ``DepthFormat.near``/``far`` in the map's own units (millimetres for a 16-bit
   PNG; for disparity near > far) when given, else the per-frame minimum and maximum over the valid pixels
   (nearest and farthest valid value). Fixed ranges keep a video from flickering; per-frame min-max is what
   the data sets did to their maps.
3. Each valid pixel is placed linearly in that range, clipped to it: t = 0 at the near end, 1 at the far
   end (for disparity, linear in disparity); ``near-dark`` writes round(255 t), ``near-bright``
   round(255 (1 - t)). A frame whose valid pixels all have the same value maps them to the near end.
4. Invalid pixels get the FAR end (255 for ``near-dark``, 0 for ``near-bright``): no reading is treated as
   background, never as the nearest (most salient-looking) surface. A frame without any valid pixel becomes a
   uniform far map, with an :class:`~calibnet.runtime.core.errors.InputWarning`.

Maps with a channel axis ([H,W,1], [H,W,3], [H,W,4]: gray saved as RGB(A)) use the first channel.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError, InputWarning

__all__ = ["DepthFormat", "DEPTH_KINDS", "DEPTH_DIRECTIONS", "DEFAULT_DIRECTION", "depth_to_u8", "depth_plane",
           "invalid_share", "valid_depth"]

DEPTH_KINDS = ("auto", "u8", "u8-inverted", "metric", "disparity")
DEPTH_DIRECTIONS = ("near-dark", "near-bright")
DEFAULT_DIRECTION = "near-dark"


@dataclass(frozen=True)
class DepthFormat:
    """How to read a depth map: its ``kind``, an optional fixed ``near``/``far`` range (in the map's units) and
    the ``direction`` of the model's 8-bit convention (None: the model's metadata, else ``near-dark``)."""

    kind: str = "auto"
    near: float | None = None
    far: float | None = None
    direction: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in DEPTH_KINDS:
            raise ValueError(f"depth kind must be one of {', '.join(DEPTH_KINDS)}, not {self.kind!r}")
        if self.direction is not None and self.direction not in DEPTH_DIRECTIONS:
            raise ValueError(f"depth direction must be one of {', '.join(DEPTH_DIRECTIONS)}, not {self.direction!r}")
        for name in ("near", "far"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"depth {name} must be a finite number > 0, got {v}")
        if self.near is not None and self.far is not None and self.near == self.far:
            raise ValueError(f"depth near and far must differ, both are {self.near}")

    def with_direction(self, direction: str) -> DepthFormat:
        """This format with ``direction`` filled in where it was left open."""
        return self if self.direction is not None else replace(self, direction=direction)

    def with_range_of(self, depths: Iterable[np.ndarray]) -> DepthFormat:
        """This ``metric`` or ``disparity`` format with the ends it leaves open (``near``, ``far``) set from the
        valid values of ``depths`` (rule 1 of the module doc; metric: the nearest and farthest, disparity: the
        largest and smallest): one steady range for a whole sequence, measured on its first frames, instead of
        each frame's own min-max. Unchanged for other kinds, or when the maps hold fewer than two distinct
        valid values."""
        if self.kind not in ("metric", "disparity") or (self.near is not None and self.far is not None):
            return self
        lo, hi = np.inf, -np.inf
        for depth in depths:
            plane = depth_plane(depth)
            vals = plane[valid_depth(plane)]
            if vals.size:
                lo, hi = min(lo, float(vals.min())), max(hi, float(vals.max()))
        if not lo < hi:
            return self
        near, far = (lo, hi) if self.kind == "metric" else (hi, lo)
        return replace(self, near=self.near if self.near is not None else near,
                       far=self.far if self.far is not None else far)


def depth_plane(depth: np.ndarray) -> np.ndarray:
    """[H,W] view of a depth map given as [H,W], [H,W,1], [H,W,3] or [H,W,4]; InputError for anything else."""
    depth = np.asarray(depth)
    if depth.dtype == bool or not (np.issubdtype(depth.dtype, np.integer) or np.issubdtype(depth.dtype, np.floating)):
        raise InputError(f"depth must be an integer or float map, got dtype {depth.dtype}")
    if depth.ndim == 3 and depth.shape[2] in (1, 3, 4):
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise InputError(f"depth must be [H,W] (or [H,W,C] gray with C = 1, 3 or 4), got shape {depth.shape}")
    if depth.size == 0:
        raise InputError(f"depth map is empty (shape {depth.shape})")
    return depth


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """bool map of the valid readings of a depth map as given: finite and > 0 (0 is the "no reading" value of
    depth sensors, NaN/inf come from float pipelines, negative values are invalid too)."""
    depth = np.asarray(depth)
    if np.issubdtype(depth.dtype, np.unsignedinteger):
        return depth != 0
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & np.greater(depth, 0)


def invalid_share(depth: np.ndarray) -> float:
    """The share of invalid pixels (:func:`valid_depth`) of a depth map as given, before any conversion. For
    8-bit maps this counts the zeros, which the model reads as is (the data sets' PNGs write 0 where the
    sensor had no reading; a min-max normalized map may also hold a few true zeros at its near end)."""
    plane = depth_plane(depth)
    return 1.0 - np.count_nonzero(valid_depth(plane)) / plane.size


def _resolve_kind(kind: str, dtype: np.dtype) -> str:
    if kind == "auto":
        return "u8" if dtype == np.uint8 else "metric"
    if kind in ("u8", "u8-inverted") and dtype != np.uint8:
        raise InputError(f"depth kind {kind!r} needs an 8-bit (uint8) map, got {dtype}; "
                         "use kind 'metric' (distances) or 'disparity' (inverse depth)")
    return kind


def depth_to_u8(depth: np.ndarray, fmt: DepthFormat | None = None) -> np.ndarray:
    """uint8 [H,W] depth in the model's convention from any supported depth map (see the module docs)."""
    fmt = fmt or DepthFormat()
    plane = depth_plane(depth)
    kind = _resolve_kind(fmt.kind, plane.dtype)
    direction = fmt.direction or DEFAULT_DIRECTION
    if kind == "u8":
        return np.ascontiguousarray(plane)
    if kind == "u8-inverted":
        return np.subtract(np.uint8(255), plane)
    # metric / disparity: work in float64 for wide integers, float32 otherwise
    work = plane.astype(np.float64 if plane.dtype.itemsize > 4 or plane.dtype == np.uint32 else np.float32)
    valid = valid_depth(work)
    far_value = 255 if direction == "near-dark" else 0
    if not valid.any():
        warnings.warn(f"depth map has no valid pixel (all 0, negative, NaN or inf): using a uniform far map "
                      f"({far_value})", InputWarning, stacklevel=2)
        return np.full(plane.shape, far_value, np.uint8)
    vals = work[valid]
    sign = 1.0 if kind == "metric" else -1.0  # disparity: larger = nearer
    s = sign * vals
    near = sign * fmt.near if fmt.near is not None else float(s.min())
    far = sign * fmt.far if fmt.far is not None else float(s.max())
    if fmt.near is not None and fmt.far is not None and far <= near:
        order = "near < far" if kind == "metric" else "near > far (larger disparity = nearer)"
        raise InputError(f"depth range for kind {kind!r} needs {order}, got near={fmt.near}, far={fmt.far}")
    # a constant frame, or one fixed end beyond all values: two levels (at/before near -> near, else far)
    t = np.clip((s - near) / (far - near), 0.0, 1.0) if far > near else (s > near).astype(np.float32)
    level = np.rint(255.0 * t) if direction == "near-dark" else np.rint(255.0 * (1.0 - t))
    out = np.full(plane.shape, far_value, np.uint8)
    out[valid] = level.astype(np.uint8)
    return out
