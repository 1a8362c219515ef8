"""Synthetic RGB-D scenes (numpy + OpenCV, no torch), deterministic by seed.

Textured ellipses and rectangles at different depths over a cluttered background; the nearest objects
are the salient instances. Depth follows the RGB-D SOD data sets' 8-bit convention used by the official
code: near = dark, far = bright (COME15K, SIP and CalibNet's own figures; see runtime/depth.py).

:func:`write_synthetic_dataset` writes scenes as a COCO-json data set in the layout of the official
DSIS/SIP folders (``RGB/``, ``depth/``, one json), which :class:`calibnet.data.RGBDInstanceDataset`,
``calibnet-eval`` and ``calibnet-train`` read like the real data sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..runtime.core.prediction import mask_to_rle
from .registry import DatasetSpec

__all__ = ["SYNTHETIC_JSON", "Scene", "make_scene", "mask_to_polygons", "mask_to_rle", "scene_seed",
           "synthetic_dataset_spec", "write_synthetic_dataset"]

#: File names of a synthetic data set inside its folder (the official DSIS/SIP layout).
SYNTHETIC_JSON = "annotations.json"
SYNTHETIC_RGB_DIR = "RGB"
SYNTHETIC_DEPTH_DIR = "depth"


@dataclass
class Scene:
    """One generated RGB-D frame and its salient instance masks."""

    rgb: np.ndarray  # uint8 [H,W,3] RGB
    depth: np.ndarray  # uint8 [H,W], near = dark, far = bright
    masks: np.ndarray  # bool [K,H,W] salient instances (visible parts)


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    noise = rng.normal(0, 18, (h // 8 + 1, w // 8 + 1, 3))
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    stripes = (np.sin(np.arange(w)[None, :] * rng.uniform(0.05, 0.3)) * rng.uniform(0, 25))[:, :, None]
    return np.clip(base[None, None, :] + noise + stripes, 0, 255)


def _shape_mask(rng: np.random.Generator, h: int, w: int, size: float,
                centre: tuple[float, float] | None = None) -> np.ndarray:
    """A filled ellipse or rectangle (even odds) of half-width ``size`` in an [h,w] canvas, centred at
    ``centre`` (x, y; default: the canvas centre)."""
    cx, cy = centre if centre is not None else (w // 2, h // 2)
    m = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        cv2.ellipse(m, (int(cx), int(cy)), (int(size), int(size * rng.uniform(0.6, 1.2))), float(rng.uniform(0, 180)),
                    0, 360, 1, -1)
    else:
        cv2.rectangle(m, (int(cx - size), int(cy - size * 0.7)), (int(cx + size), int(cy + size * 0.7)), 1, -1)
    return m.astype(bool)


def make_scene(seed: int = 0, height: int = 320, width: int = 480, n_salient: int = 2,
               n_clutter: int = 4) -> Scene:
    """A scene with ``n_salient`` near objects (salient) in front of ``n_clutter`` far ones."""
    rng = np.random.default_rng(seed)
    rgb = _texture(rng, height, width, rng.uniform(60, 160, 3))
    ramp = np.linspace(20, 70, height)[:, None] * np.ones((1, width))
    depth = ramp + rng.normal(0, 2, (height, width))
    objects = [(False, rng.uniform(70, 120)) for _ in range(n_clutter)]
    objects += [(True, rng.uniform(170, 240)) for _ in range(n_salient)]
    objects.sort(key=lambda o: o[1])  # far first, near last (painter's order)
    masks: list[np.ndarray] = []
    for salient, z in objects:
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.15, 0.85) * width
        size = (min(height, width) * rng.uniform(0.12, 0.25)) * (1.3 if salient else 0.8)
        region = _shape_mask(rng, height, width, size, (cx, cy))
        color = rng.uniform(0, 255, 3) if salient else rng.uniform(60, 160, 3)
        rgb[region] = _texture(rng, height, width, color)[region]
        depth[region] = z + rng.normal(0, 1.5, region.sum())
        for prev in masks:  # nearer objects occlude earlier ones
            prev &= ~region
        if salient:
            masks.append(region)
    masks_arr = np.array([m for m in masks if m.any()], dtype=bool).reshape(-1, height, width)
    # `depth` holds nearness above (near = high); the data sets store near = dark, far = bright
    return Scene(np.clip(rgb, 0, 255).astype(np.uint8), (255 - np.clip(depth, 0, 255)).astype(np.uint8), masks_arr)


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene ``index`` of a data set written with ``seed`` (sets with different seeds are
    disjoint for up to 1,000,000 images each)."""
    return int(seed) * 1_000_000 + int(index)


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a bool mask as COCO polygons (pixel centres + 0.5, i.e. pixel-edge coordinates
    as COCO uses them); holes are not representable and are filled."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[round(float(v), 2) for v in c.reshape(-1) + 0.5] for c in contours if len(c) >= 3]


def synthetic_dataset_spec(out_dir: str | Path, name: str = "synthetic") -> DatasetSpec:
    """The :class:`DatasetSpec` of a data set written by :func:`write_synthetic_dataset` in ``out_dir``."""
    out = Path(out_dir)
    return DatasetSpec(name, out / SYNTHETIC_JSON, out / SYNTHETIC_RGB_DIR, out / SYNTHETIC_DEPTH_DIR)


def _draw_count(rng: np.random.Generator, value: int | tuple[int, int]) -> int:
    if isinstance(value, (tuple, list)):
        return int(rng.integers(int(value[0]), int(value[1]) + 1))
    return int(value)


def write_synthetic_dataset(out_dir: str | Path, num_images: int, seed: int = 0, height: int = 320, width: int = 480,
                            *, segmentation: str = "rle", image_format: str = "jpg", name: str = "synthetic",
                            jpeg_quality: int = 95, **scene_kwargs: Any) -> DatasetSpec:
    """Write ``num_images`` synthetic RGB-D scenes as a COCO-json data set; returns its :class:`DatasetSpec`.

    Layout (as the official DSIS/SIP folders): ``out_dir/RGB/<id>.jpg`` (or ``.png``),
    ``out_dir/depth/<id>.png`` (8-bit, near = dark), ``out_dir/annotations.json`` (one category,
    ``foreground``, id 1; image ids 1..N; ``segmentation`` as compressed RLE, or polygons with
    ``segmentation="polygon"``). Deterministic by ``seed``: scene ``i`` is
    ``make_scene(scene_seed(seed, i), ...)``. ``scene_kwargs`` go to :func:`make_scene`; ``n_salient``
    and ``n_clutter`` may also be inclusive ranges ``(lo, hi)`` drawn per image (default: 1..3 salient,
    2..5 clutter). Existing files of the same names are overwritten.
    """
    if segmentation not in ("rle", "polygon"):
        raise ValueError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
    ext = image_format.lower().lstrip(".")
    if ext not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    spec = synthetic_dataset_spec(out_dir, name)
    spec.image_root.mkdir(parents=True, exist_ok=True)
    spec.depth_root.mkdir(parents=True, exist_ok=True)
    n_salient = scene_kwargs.pop("n_salient", (1, 3))
    n_clutter = scene_kwargs.pop("n_clutter", (2, 5))
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(num_images):
        s_seed = scene_seed(seed, i)
        counts_rng = np.random.default_rng([s_seed, 7])
        scene = make_scene(s_seed, height, width, n_salient=_draw_count(counts_rng, n_salient),
                           n_clutter=_draw_count(counts_rng, n_clutter), **scene_kwargs)
        image_id = i + 1
        file_name = f"{image_id:06d}.{ext}"
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == "jpg" else []
        cv2.imwrite(str(spec.image_path(file_name)), scene.rgb[:, :, ::-1], params)
        cv2.imwrite(str(spec.depth_path(file_name)), scene.depth)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for m in scene.masks:
            ys, xs = np.nonzero(m)
            seg: Any = mask_to_rle(m) if segmentation == "rle" else mask_to_polygons(m)
            if not seg:
                continue
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "area": float(m.sum()), "segmentation": seg,
                "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                         float(ys.max() - ys.min() + 1)],
            })
    coco = {"info": {"description": f"calibnet synthetic RGB-D scenes (seed {seed})"},
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "foreground", "supercategory": "foreground"}]}
    spec.json_file.write_text(json.dumps(coco))
    return spec
