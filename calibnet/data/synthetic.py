"""Synthetic RGB-D scenes (numpy + OpenCV, no torch), deterministic by seed.

Textured ellipses and rectangles at different depths over a cluttered background; the nearest objects
are the salient instances. Depth follows the RGB-D SOD data sets' 8-bit convention used by the official
code: near = bright (255), far = dark.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Scene", "make_scene"]


@dataclass
class Scene:
    """One generated RGB-D frame and its salient instance masks."""

    rgb: np.ndarray  # uint8 [H,W,3] RGB
    depth: np.ndarray  # uint8 [H,W], near = bright
    masks: np.ndarray  # bool [K,H,W] salient instances (visible parts)


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    noise = rng.normal(0, 18, (h // 8 + 1, w // 8 + 1, 3))
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    stripes = (np.sin(np.arange(w)[None, :] * rng.uniform(0.05, 0.3)) * rng.uniform(0, 25))[:, :, None]
    return np.clip(base[None, None, :] + noise + stripes, 0, 255)


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
        m = np.zeros((height, width), np.uint8)
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.15, 0.85) * width
        size = (min(height, width) * rng.uniform(0.12, 0.25)) * (1.3 if salient else 0.8)
        if rng.random() < 0.5:
            cv2.ellipse(m, (int(cx), int(cy)), (int(size), int(size * rng.uniform(0.6, 1.2))),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            cv2.rectangle(m, (int(cx - size), int(cy - size * 0.7)), (int(cx + size), int(cy + size * 0.7)), 1, -1)
        region = m.astype(bool)
        color = rng.uniform(0, 255, 3) if salient else rng.uniform(60, 160, 3)
        rgb[region] = _texture(rng, height, width, color)[region]
        depth[region] = z + rng.normal(0, 1.5, region.sum())
        for prev in masks:  # nearer objects occlude earlier ones
            prev &= ~region
        if salient:
            masks.append(region)
    masks_arr = np.array([m for m in masks if m.any()], dtype=bool).reshape(-1, height, width)
    return Scene(np.clip(rgb, 0, 255).astype(np.uint8), np.clip(depth, 0, 255).astype(np.uint8), masks_arr)
