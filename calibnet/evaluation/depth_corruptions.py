"""Depth-sensor failures at five severities, applied to a depth map as the user gives it (numpy + OpenCV).

Real RGB-D sensors fail in known ways; :func:`corrupt_depth` reproduces each of them on an 8-bit map (the
data sets' PNGs), a 16-bit map (millimetres of a ``z16`` stream) or a float map (metres), keeping its
shape and dtype. The same function corrupts the evaluation's depth (``calibnet-eval --depth-corruption``)
and the training depth (``calibnet-train --depth-augment``), so both see identical failures.

Invalid pixels follow the runtime's rule (:func:`calibnet.runtime.core.depth.valid_depth`): a corruption
that removes readings writes 0 into integer maps (the "no reading" value of depth sensors) and NaN into
float maps (float pipelines), and it never turns an invalid pixel into a valid one.

==================  ==========================================================================================
name                severity 1 .. 5
==================  ==========================================================================================
``holes``           smooth random blobs set invalid: 5, 10, 20, 35, 50 % of the area (glass, black or shiny
                    surfaces, sunlight)
``edge_dropout``    invalid bands along depth edges (stereo shadows): 1, 2, 3, 5, 8 px on each side of an
                    edge (at a 480 px long side; scaled with the image)
``noise``           Gaussian noise proportional to the distance: sigma = 1, 2, 4, 7, 10 % of the depth
``quantization``    coarser depth steps: 4, 8, 16, 32, 64 levels of the 8-bit scale (of the map's valid
                    range for 16-bit and float maps), rounded down
``shift``           the depth image misaligned by 2, 4, 8, 12, 16 px (at 480 px; a random direction per
                    seed), the uncovered border invalid
``blur``            Gaussian blur of sigma 0.5, 1, 2, 3, 5 px (at 480 px) over the valid pixels
``missing``         the whole frame invalid (the same at every severity)
``wrong_direction`` near and far swapped inside the valid range (a near-bright map given to a near-dark
                    model; the same at every severity)
==================  ==========================================================================================

Each corruption is deterministic for a seed, and its random draws do not depend on the severity: a higher
severity changes a superset of the pixels a lower one changes (holes, edge bands, noise, quantization) or
moves further (shift, blur), so the share of changed pixels never decreases with the severity.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..runtime.core.depth import DEFAULT_DIRECTION, depth_plane, valid_depth

__all__ = ["CORRUPTIONS", "SEVERITIES", "changed_share", "constant_depth", "corrupt_depth"]

CORRUPTIONS = ("holes", "edge_dropout", "noise", "quantization", "shift", "blur", "missing", "wrong_direction")
SEVERITIES = (1, 2, 3, 4, 5)

_HOLE_SHARE = (0.05, 0.10, 0.20, 0.35, 0.50)
_EDGE_PX = (1, 2, 3, 5, 8)
_NOISE_REL = (0.01, 0.02, 0.04, 0.07, 0.10)
_QUANT_STEP_U8 = (4, 8, 16, 32, 64)
_SHIFT_PX = (2, 4, 8, 12, 16)
_BLUR_SIGMA = (0.5, 1.0, 2.0, 3.0, 5.0)
_REFERENCE_SIDE = 480.0  # pixel sizes above are for a 480 px long side (the data sets' test size)


def _scaled(px: float, shape: tuple[int, ...]) -> float:
    return px * max(shape[:2]) / _REFERENCE_SIDE


def _store(values: np.ndarray, valid: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``values`` (float) where ``valid``, invalid elsewhere, in ``like``'s dtype: integers rounded and clipped
    to 1..max (a corrupted reading stays a reading), floats as they are; 0 / NaN for the invalid pixels."""
    if np.issubdtype(like.dtype, np.integer):
        top = np.iinfo(like.dtype).max
        out = np.where(valid, np.clip(np.rint(np.nan_to_num(values)), 1, top), 0)
    else:
        out = np.where(valid, values, np.nan)
    return out.astype(like.dtype)


def _distance(plane: np.ndarray, direction: str) -> np.ndarray:
    """A value that grows with the distance: the map itself, or 255 - map for a near-bright 8-bit map."""
    work = plane.astype(np.float64)
    return 255.0 - work if plane.dtype == np.uint8 and direction != DEFAULT_DIRECTION else work


def _holes(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator, direction: str) -> np.ndarray:
    h, w = plane.shape
    cell = max(2, int(round(_scaled(24, plane.shape))))  # blob size
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    hole = field >= np.quantile(field, 1.0 - _HOLE_SHARE[s - 1])
    return _store(plane.astype(np.float64), valid & ~hole, plane)


def _edges(plane: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Depth edges: a jump of more than 5 % of the valid range within a 3x3 neighbourhood of the 5x5 median of
    the map (the median keeps sensor noise from making edges; valid pixels only)."""
    if not valid.any():
        return np.zeros_like(valid)
    work = np.where(valid, plane.astype(np.float64), np.nan)
    lo, hi = np.nanmin(work), np.nanmax(work)
    t = cv2.medianBlur(np.nan_to_num((work - lo) / max(hi - lo, 1e-12), nan=0.0).astype(np.float32), 5)
    kernel = np.ones((3, 3), np.uint8)
    jump = cv2.dilate(t, kernel) - cv2.erode(np.where(valid, t, np.float32(2.0)), kernel)
    return (jump > 0.05) & valid


def _edge_dropout(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator,
                  direction: str) -> np.ndarray:
    r = max(1, int(round(_scaled(_EDGE_PX[s - 1], plane.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    band = cv2.dilate(_edges(plane, valid).astype(np.uint8), kernel).astype(bool)
    return _store(plane.astype(np.float64), valid & ~band, plane)


def _noise(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator, direction: str) -> np.ndarray:
    z = rng.standard_normal(plane.shape)
    dist = _distance(plane, direction)
    noisy = dist + _NOISE_REL[s - 1] * np.abs(dist) * z
    if plane.dtype == np.uint8 and direction != DEFAULT_DIRECTION:
        noisy = 255.0 - noisy
    return _store(noisy, valid, plane)


def _quantization(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator,
                  direction: str) -> np.ndarray:
    work = plane.astype(np.float64)
    if plane.dtype == np.uint8:
        step = float(_QUANT_STEP_U8[s - 1])
    else:
        span = float(np.ptp(work[valid])) if valid.any() else 0.0
        base = span / 255.0 * _QUANT_STEP_U8[0]
        if np.issubdtype(plane.dtype, np.integer):
            base = max(1.0, float(np.rint(base)))
        step = base * 2 ** (s - 1)  # doubling steps: the multiples of a coarser step are multiples of a finer one
    if step <= 0:
        return plane.copy()
    q = np.floor(np.nan_to_num(work) / step) * step
    return _store(np.where(q > 0, q, step), valid, plane)  # rounded down to 0: the first step (still a reading)


def _shift(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator,
           direction: str) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    px = _scaled(_SHIFT_PX[s - 1], plane.shape)
    dy, dx = int(round(px * np.sin(angle))), int(round(px * np.cos(angle)))
    h, w = plane.shape
    out = np.zeros(plane.shape, np.float64)
    ok = np.zeros(plane.shape, bool)
    if abs(dy) < h and abs(dx) < w:
        dst = np.s_[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        src = np.s_[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
        out[dst] = np.nan_to_num(plane[src].astype(np.float64))
        ok[dst] = valid[src]
    return _store(out, ok, plane)


def _blur(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator,
          direction: str) -> np.ndarray:
    sigma = _scaled(_BLUR_SIGMA[s - 1], plane.shape)
    weight = valid.astype(np.float64)
    num = cv2.GaussianBlur(np.where(valid, plane.astype(np.float64), 0.0), (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    blurred = num / np.maximum(den, 1e-12)  # normalized convolution: invalid pixels do not pull values to 0
    if np.issubdtype(plane.dtype, np.floating):
        blurred = blurred.astype(plane.dtype)  # a float map keeps its precision
    return _store(blurred, valid, plane)


def _missing(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator,
             direction: str) -> np.ndarray:
    return _store(np.zeros(plane.shape), np.zeros(plane.shape, bool), plane)


def _wrong_direction(plane: np.ndarray, valid: np.ndarray, s: int, rng: np.random.Generator,
                     direction: str) -> np.ndarray:
    work = plane.astype(np.float64)
    if plane.dtype == np.uint8:
        return _store(255.0 - work, valid, plane)
    if not valid.any():
        return plane.copy()
    lo, hi = work[valid].min(), work[valid].max()
    return _store(lo + hi - work, valid, plane)


#: each corruption: (plane, valid pixels, severity, rng, 8-bit direction) -> corrupted plane
_APPLY = {"holes": _holes, "edge_dropout": _edge_dropout, "noise": _noise, "quantization": _quantization,
          "shift": _shift, "blur": _blur, "missing": _missing, "wrong_direction": _wrong_direction}


def corrupt_depth(depth: np.ndarray, name: str, severity: int, seed: int | Sequence[int] = 0, *,
                  direction: str = DEFAULT_DIRECTION) -> np.ndarray:
    """``depth`` with the sensor failure ``name`` (one of :data:`CORRUPTIONS`) at ``severity`` 1..5.

    ``depth``: [H,W] (or gray [H,W,C]: every channel alike) uint8, uint16 (or another integer type) or float,
    as a camera or data set gives it; the result has its shape and dtype. ``seed`` (an int or a sequence of
    ints, e.g. ``(seed, image_id)``) fixes the random draws; ``direction`` is the 8-bit map's convention
    (``near-dark``: larger = farther), used by the distance-proportional noise. See the module doc.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown depth corruption {name!r}: one of {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    arr = np.asarray(depth)
    depth_plane(arr)  # the runtime's checks of a depth map (dtype, shape, not empty)
    planes = [arr] if arr.ndim == 2 else [arr[:, :, c] for c in range(arr.shape[2])]
    key = [*([int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]), CORRUPTIONS.index(name)]
    # a fresh generator per plane: the same draws for every channel of a gray map
    out = [_APPLY[name](p, valid_depth(p), severity, np.random.default_rng(key), direction) for p in planes]
    return out[0] if arr.ndim == 2 else np.stack(out, axis=2)


def constant_depth(depth: np.ndarray) -> np.ndarray:
    """``depth`` replaced by one constant (the RGB-only reference of a robustness study): the middle of the
    8-bit scale (128) for uint8 maps, else the middle of the map's valid range (1 for a map without any)."""
    arr = np.asarray(depth)
    if arr.dtype == np.uint8:
        return np.full_like(arr, 128)
    valid = valid_depth(arr)
    mid = 0.5 * (float(arr[valid].min()) + float(arr[valid].max())) if valid.any() else 1.0
    return np.full_like(arr, np.rint(mid) if np.issubdtype(arr.dtype, np.integer) else mid)


def changed_share(before: np.ndarray, after: np.ndarray) -> float:
    """The share of pixels whose value differs (NaN equals NaN)."""
    a, b = np.asarray(before), np.asarray(after)
    same = (a == b) | (np.isnan(a) & np.isnan(b)) if np.issubdtype(a.dtype, np.floating) else a == b
    return float(1.0 - np.count_nonzero(same) / max(same.size, 1))
