"""Geometric augmentation of RGB, depth and instance masks with one sampled transform (numpy, no torch).

The official training mapper (``RGBDSISTrainDatasetMapper``, detectron2 transforms) applies, in order:

1. ``RandomFlip`` (horizontal, probability 0.5);
2. with probability 0.5 (the official ``np.random.rand() > 0.5``): ``ResizeShortestEdge([400, 500, 600],
   sample_style="choice")`` without a long-side limit, then ``RandomCrop("absolute_range", (384, 600))``:
   crop height drawn from ``[min(h, 384), min(h, 600)]``, width likewise, position uniform;
3. ``ResizeShortestEdge(MIN_SIZE_TRAIN, MAX_SIZE_TRAIN, MIN_SIZE_TRAIN_SAMPLING)`` (320, 480, "choice").

Testing is ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)`` only.

Depth-robust training (``calibnet-train --depth-augment [P]``) adds :class:`DepthAugment`: with probability P
the depth map, as read, gets one of the sensor failures of
:mod:`calibnet.evaluation.depth_corruptions` (the very code the robustness study evaluates with) at a random
severity, before the geometric transform. Images (uint8 RGB and depth alike)
are resized with Pillow's bilinear filter as detectron2's ``ResizeTransform`` does; bitmask (RLE)
instances with Pillow's nearest rule; polygon instances are transformed as coordinates and rasterized
at the output size, as detectron2 does for ``MASK_FORMAT: polygon``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluation.depth_corruptions import CORRUPTIONS, SEVERITIES, corrupt_depth
from ..runtime.core.resize import pil_bilinear_resize_u8, shortest_edge_size

__all__ = ["Crop", "DEFAULT_DEPTH_AUGMENT", "DEPTH_AUGMENT_STREAM", "DepthAugment", "Flip", "GeometricTransform",
           "Resize", "TRAIN_PRE_CROP_SIZES", "TRAIN_CROP_PROBABILITY",
           "nearest_indices", "sample_crop_box", "sample_train_transform", "test_transform"]

#: Short sides of the resize that precedes the random crop (hard-coded in the official train mapper).
TRAIN_PRE_CROP_SIZES = (400, 500, 600)
#: Probability of the resize+crop branch (the official mapper: ``np.random.rand() > 0.5``).
TRAIN_CROP_PROBABILITY = 0.5
#: Probability of the horizontal flip (detectron2 ``RandomFlip`` default).
FLIP_PROBABILITY = 0.5


#: the probability of ``calibnet-train --depth-augment`` given without a value
DEFAULT_DEPTH_AUGMENT = 0.5
#: appended to a sample's seed for the generator of its depth augmentation: its own draws, so a sample's scene and
#: geometric transform are the same with or without ``--depth-augment``
DEPTH_AUGMENT_STREAM = 0xDE7


@dataclass(frozen=True)
class DepthAugment:
    """With probability ``p``, one of ``corruptions`` (uniformly) at one of ``severities`` (uniformly) applied to a
    training depth map by :func:`~calibnet.evaluation.depth_corruptions.corrupt_depth`; the draws come from the
    sample's generator, so a seeded sample is corrupted the same way in any worker."""

    p: float = DEFAULT_DEPTH_AUGMENT
    corruptions: tuple[str, ...] = CORRUPTIONS
    severities: tuple[int, ...] = SEVERITIES

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"depth augmentation probability must be in [0, 1], got {self.p}")
        if not self.corruptions or any(c not in CORRUPTIONS for c in self.corruptions):
            raise ValueError(f"depth augmentation corruptions must be among {', '.join(CORRUPTIONS)}")
        if not self.severities or any(s not in SEVERITIES for s in self.severities):
            raise ValueError(f"depth augmentation severities must be among {SEVERITIES}")

    def __call__(self, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``depth`` corrupted (probability ``p``) or as it is."""
        if self.p <= 0.0 or rng.random() >= self.p:
            return depth
        name = self.corruptions[int(rng.integers(len(self.corruptions)))]
        severity = self.severities[int(rng.integers(len(self.severities)))]
        return corrupt_depth(depth, name, severity, int(rng.integers(2**31)))


@dataclass(frozen=True)
class Flip:
    """Horizontal flip of an image ``width`` pixels wide."""

    width: int


@dataclass(frozen=True)
class Crop:
    """Keep rows ``y0 .. y0+h`` and columns ``x0 .. x0+w``."""

    x0: int
    y0: int
    w: int
    h: int


@dataclass(frozen=True)
class Resize:
    """Resize from (h, w) to (new_h, new_w)."""

    h: int
    w: int
    new_h: int
    new_w: int


Step = Flip | Crop | Resize


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output pixel of Pillow's NEAREST resize: ``int((x + 0.5) * in / out)``."""
    idx = ((np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size)).astype(np.int64)
    return np.minimum(idx, in_size - 1)


@dataclass
class GeometricTransform:
    """A sequence of flips, crops and resizes, applied identically to every map of one sample."""

    input_hw: tuple[int, int]
    steps: list[Step] = field(default_factory=list)

    @property
    def output_hw(self) -> tuple[int, int]:
        """(h, w) after every step."""
        h, w = self.input_hw
        for s in self.steps:
            if isinstance(s, Crop):
                h, w = s.h, s.w
            elif isinstance(s, Resize):
                h, w = s.new_h, s.new_w
        return h, w

    def _check(self, hw: tuple[int, ...]) -> None:
        if tuple(hw) != tuple(self.input_hw):
            raise ValueError(f"transform built for {self.input_hw}, applied to {tuple(hw)}")

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        """uint8 [H,W] or [H,W,C] image: flips and crops exactly, resizes with Pillow bilinear."""
        self._check(img.shape[:2])
        for s in self.steps:
            if isinstance(s, Flip):
                img = img[:, ::-1]
            elif isinstance(s, Crop):
                img = img[s.y0:s.y0 + s.h, s.x0:s.x0 + s.w]
            else:
                img = pil_bilinear_resize_u8(np.ascontiguousarray(img), (s.new_h, s.new_w))
        return np.ascontiguousarray(img)

    def apply_masks(self, masks: np.ndarray) -> np.ndarray:
        """bool [K,H,W] bitmasks: flips and crops exactly, resizes with Pillow's nearest rule."""
        self._check(masks.shape[1:])
        for s in self.steps:
            if isinstance(s, Flip):
                masks = masks[:, :, ::-1]
            elif isinstance(s, Crop):
                masks = masks[:, s.y0:s.y0 + s.h, s.x0:s.x0 + s.w]
            else:
                rows, cols = nearest_indices(s.h, s.new_h), nearest_indices(s.w, s.new_w)
                masks = masks[:, rows][:, :, cols]
        return np.ascontiguousarray(masks)

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Flat [x0, y0, x1, y1, ...] polygons in pixel-edge coordinates, transformed as detectron2 does
        (flip: x -> W - x; crop: shift; resize: scale each axis). Parts outside a crop are kept; the
        rasterizer clamps them onto the border."""
        out = []
        for poly in polygons:
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2).copy()
            for s in self.steps:
                if isinstance(s, Flip):
                    xy[:, 0] = s.width - xy[:, 0]
                elif isinstance(s, Crop):
                    xy -= (s.x0, s.y0)
                else:
                    xy *= (s.new_w / s.w, s.new_h / s.h)
            out.append(xy.reshape(-1))
        return out


def _resize_step(h: int, w: int, short: int, max_size: int) -> Resize:
    return Resize(h, w, *shortest_edge_size(h, w, short, max_size))


def sample_crop_box(rng: np.random.Generator, h: int, w: int, crop_type: str,
                    crop_size: Sequence[float]) -> Crop:
    """detectron2 ``RandomCrop``: size by ``crop_type`` (absolute_range / absolute / relative /
    relative_range), then a uniform position."""
    if crop_type == "absolute_range":
        lo, hi = int(crop_size[0]), int(crop_size[1])
        if lo > hi:
            raise ValueError(f"absolute_range crop size needs min <= max, got {tuple(crop_size)}")
        ch = int(rng.integers(min(h, lo), min(h, hi) + 1))
        cw = int(rng.integers(min(w, lo), min(w, hi) + 1))
    elif crop_type == "absolute":
        ch, cw = min(int(crop_size[0]), h), min(int(crop_size[1]), w)
    elif crop_type == "relative":
        ch, cw = int(h * crop_size[0] + 0.5), int(w * crop_size[1] + 0.5)
    elif crop_type == "relative_range":
        rel = np.asarray(crop_size, dtype=np.float64)
        fh, fw = rel + rng.random(2) * (1 - rel)
        ch, cw = int(h * fh + 0.5), int(w * fw + 0.5)
    else:
        raise ValueError(f"unknown crop type {crop_type!r}")
    ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
    y0 = int(rng.integers(h - ch + 1))
    x0 = int(rng.integers(w - cw + 1))
    return Crop(x0, y0, cw, ch)


def _sample_short(rng: np.random.Generator, sizes: Sequence[int], style: str) -> int:
    if style == "range":
        if len(sizes) != 2:
            raise ValueError(f"min_size_train with 'range' sampling needs (min, max), got {tuple(sizes)}")
        return int(rng.integers(int(sizes[0]), int(sizes[1]) + 1))
    if style != "choice":
        raise ValueError(f"unknown min_size_train sampling {style!r} (choice or range)")
    return int(sizes[int(rng.integers(len(sizes)))])


def sample_train_transform(rng: np.random.Generator, h: int, w: int, cfg_input: Any) -> GeometricTransform:
    """The official train-time transform of an (h, w) image; ``cfg_input`` is ``CalibNetConfig.input``
    (``min_size_train``, ``max_size_train``, ``crop_enabled``, ``crop_type``, ``crop_size``; optional
    ``min_size_train_sampling`` "choice" (default) or "range", ``random_flip`` "horizontal" (default)
    or "none")."""
    t = GeometricTransform((h, w))
    if getattr(cfg_input, "random_flip", "horizontal") == "horizontal" and rng.random() < FLIP_PROBABILITY:
        t.steps.append(Flip(w))
    if cfg_input.crop_enabled and rng.random() < TRAIN_CROP_PROBABILITY:
        short = TRAIN_PRE_CROP_SIZES[int(rng.integers(len(TRAIN_PRE_CROP_SIZES)))]
        pre = _resize_step(h, w, short, 2**31 - 1)
        t.steps += [pre, sample_crop_box(rng, pre.new_h, pre.new_w, cfg_input.crop_type, cfg_input.crop_size)]
    ch, cw = t.output_hw
    short = _sample_short(rng, cfg_input.min_size_train, getattr(cfg_input, "min_size_train_sampling", "choice"))
    t.steps.append(_resize_step(ch, cw, short, int(cfg_input.max_size_train)))
    return t


def test_transform(h: int, w: int, cfg_input: Any) -> GeometricTransform:
    """``ResizeShortestEdge(min_size_test, max_size_test)`` of an (h, w) image (the runtime's resize)."""
    return GeometricTransform((h, w), [_resize_step(h, w, int(cfg_input.min_size_test), int(cfg_input.max_size_test))])


test_transform.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported into tests
