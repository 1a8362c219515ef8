"""Synthetic RGB-D sequences of moving objects (numpy + OpenCV, no torch), deterministic by seed.

The scenes of :mod:`calibnet.data.synthetic` set in motion: textured ellipses and rectangles, each with its
own depth, translated by a few pixels per frame over a static cluttered background; nearer objects occlude
farther ones. Each frame comes with the visible mask and the identity of every salient object, the ground
truth for tracking (``calibnet.runtime.apps.tracking``) and streaming tests. Depth follows the data sets'
convention (near = dark, far = bright) like the still scenes.

- :func:`make_moving_sequence`: objects in random directions, bouncing off the borders.
- :func:`make_crossing_sequence`: pairs of objects that cross at different depths: the far one passes
  behind the near one and is hidden for a few frames; optional depth-sensor noise and holes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .synthetic import Scene, _shape_mask, _texture

__all__ = ["MovingFrame", "make_crossing_sequence", "make_moving_sequence"]


@dataclass
class MovingFrame(Scene):
    """One frame of a sequence: a :class:`Scene` plus the object identity of each mask."""

    ids: np.ndarray = None  # type: ignore[assignment]  # int64 [K] object index of each mask in ``masks``


@dataclass
class _Mover:
    shape: np.ndarray  # bool [side,side]
    tex: np.ndarray  # float [side,side,3]
    z: float  # nearness (high = near)
    v: np.ndarray  # (dy, dx) per frame
    pos: np.ndarray  # centre (y, x)


def _render(background: np.ndarray, bg_depth: np.ndarray, objects: list[_Mover], rng: np.random.Generator,
            depth_noise: float = 0.0, holes: float = 0.0) -> MovingFrame:
    """One frame: the objects painted far to near at their positions, the visible masks and identities (the
    object's index) of those in view; ``depth_noise`` (sigma, 8-bit levels) and ``holes`` (the share of pixels
    set to 0, the sensors' "no reading") are sensor noise on the depth map."""
    height, width = bg_depth.shape
    rgb = background.copy()
    near = bg_depth.copy()
    visible: dict[int, np.ndarray] = {}
    for k in sorted(range(len(objects)), key=lambda k: objects[k].z):  # far first (painter's order)
        o = objects[k]
        side = o.shape.shape[0]
        region = np.zeros((height, width), bool)
        y0, x0 = int(round(o.pos[0])) - side // 2, int(round(o.pos[1])) - side // 2
        ya, xa = max(y0, 0), max(x0, 0)
        yb, xb = min(y0 + side, height), min(x0 + side, width)
        if ya < yb and xa < xb:
            region[ya:yb, xa:xb] = o.shape[ya - y0:yb - y0, xa - x0:xb - x0]
            rgb[ya:yb, xa:xb][region[ya:yb, xa:xb]] = o.tex[ya - y0:yb - y0, xa - x0:xb - x0][
                o.shape[ya - y0:yb - y0, xa - x0:xb - x0]]
        near[region] = o.z + rng.normal(0, 1.5, int(region.sum()))
        for prev in visible.values():
            prev &= ~region
        visible[k] = region
    ids = np.array([k for k in range(len(objects)) if visible[k].any()], np.int64)
    masks = np.array([visible[k] for k in ids], bool).reshape(-1, height, width)
    if depth_noise:
        near = near + rng.normal(0, depth_noise, near.shape)
    depth = np.clip(255 - np.clip(near, 0, 255), 1, 255).astype(np.uint8)
    if holes:
        depth[rng.random(depth.shape) < holes] = 0
    return MovingFrame(np.clip(rgb, 0, 255).astype(np.uint8), depth, masks, ids)


def _backdrop(rng: np.random.Generator, height: int, width: int, n_clutter: int) -> tuple[np.ndarray, np.ndarray]:
    """A static textured background with ``n_clutter`` far objects painted in, and its nearness map."""
    background = _texture(rng, height, width, rng.uniform(60, 160, 3))
    bg_depth = np.linspace(20, 70, height)[:, None] * np.ones((1, width)) + rng.normal(0, 2, (height, width))
    for _ in range(n_clutter):
        size = min(height, width) * rng.uniform(0.08, 0.16)
        m = _shape_mask(rng, height, width, size)
        m = np.roll(m, (int(rng.uniform(-0.3, 0.3) * height), int(rng.uniform(-0.35, 0.35) * width)), (0, 1))
        background[m] = _texture(rng, height, width, rng.uniform(60, 160, 3))[m]
        bg_depth[m] = rng.uniform(70, 120)
    return background, bg_depth


def make_crossing_sequence(seed: int = 0, n_frames: int = 40, height: int = 240, width: int = 320,
                           n_pairs: int = 2, speed: float = 3.0, depth_gap: tuple[float, float] = (30.0, 60.0),
                           depth_noise: float = 3.0, holes: float = 0.02, n_clutter: int = 2) -> list[MovingFrame]:
    """``n_frames`` frames of ``n_pairs`` crossing pairs, each in its own horizontal band: a near object and a
    smaller far one (``depth_gap`` 8-bit levels behind it) start on opposite sides and move towards each other
    at ``speed`` px per frame (each, with a random +-20 % per object), crossing in the middle of the
    sequence, where the far one is hidden behind the near one for a few frames. Object identities: pair ``p``
    has objects ``2p`` (near) and ``2p + 1`` (far). ``depth_noise`` and ``holes`` as in the moving sequences'
    renderer (sensor noise; the ground-truth masks are exact)."""
    rng = np.random.default_rng(seed)
    background, bg_depth = _backdrop(rng, height, width, n_clutter)
    side = int(min(height, width) * 0.6)
    objects: list[_Mover] = []
    for p in range(n_pairs):
        y = height * (p + 0.5) / n_pairs + rng.uniform(-0.03, 0.03) * height
        x_cross = width * rng.uniform(0.4, 0.6)
        t_cross = (n_frames - 1) / 2.0 + rng.uniform(-0.1, 0.1) * n_frames  # pairs cross at different times
        size = min(height, width) * min(0.16, 0.4 / n_pairs)
        z_near = float(rng.uniform(200, 235))
        direction = 1.0 if rng.random() < 0.5 else -1.0  # the near object's way (the far one comes the other way)
        for k, (scale, z, sign) in enumerate(((1.0, z_near, direction),
                                              (0.65, z_near - rng.uniform(*depth_gap), -direction))):
            v = sign * speed * rng.uniform(0.8, 1.2)
            shape = np.zeros((side, side), np.uint8)
            cv2.ellipse(shape, (side // 2, side // 2), (int(size * scale), int(size * scale * rng.uniform(0.8, 1.0))),
                        0.0, 0, 360, 1, -1)
            tex = _texture(rng, side, side, rng.uniform(0, 255, 3))
            dy = rng.uniform(-0.1, 0.1) * size * (k == 1)  # the far one slightly off the near one's row
            objects.append(_Mover(shape.astype(bool), tex, z, np.array([0.0, v]),
                                  np.array([y + dy, x_cross - v * t_cross])))
    frames = []
    for _ in range(n_frames):
        frames.append(_render(background, bg_depth, objects, rng, depth_noise, holes))
        for o in objects:
            o.pos = o.pos + o.v
    return frames


def make_moving_sequence(seed: int = 0, n_frames: int = 50, height: int = 240, width: int = 320,
                         n_objects: int = 3, speed: tuple[float, float] = (2.0, 5.0),
                         n_clutter: int = 3) -> list[MovingFrame]:
    """``n_frames`` frames of ``n_objects`` salient objects moving ``speed`` pixels per frame (a random
    direction per object, bouncing off the borders) in front of ``n_clutter`` static far objects."""
    rng = np.random.default_rng(seed)
    background, bg_depth = _backdrop(rng, height, width, n_clutter)
    side = int(min(height, width) * 0.6)
    objects = []
    for _ in range(n_objects):
        size = min(height, width) * rng.uniform(0.1, 0.18)
        shape = _shape_mask(rng, side, side, size)
        tex = _texture(rng, side, side, rng.uniform(0, 255, 3))
        angle = rng.uniform(0, 2 * np.pi)
        v = rng.uniform(*speed) * np.array([np.sin(angle), np.cos(angle)])
        pos = np.array([rng.uniform(0.25, 0.75) * height, rng.uniform(0.2, 0.8) * width])
        objects.append(_Mover(shape, tex, float(rng.uniform(170, 240)), v, pos))
    frames: list[MovingFrame] = []
    for _ in range(n_frames):
        frames.append(_render(background, bg_depth, objects, rng))
        for o in objects:  # move, bouncing off the borders
            o.pos = o.pos + o.v
            for a, lim in ((0, height), (1, width)):
                if not 0.1 * lim <= o.pos[a] <= 0.9 * lim:
                    o.v[a] = -o.v[a]
                    o.pos[a] = np.clip(o.pos[a], 0.1 * lim, 0.9 * lim)
    return frames
