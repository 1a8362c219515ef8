"""Graph inputs (feeds): random ones for checks and benchmarks, and prepared frames stacked into a batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .contract import INPUT_NAMES
from .preprocess import PreparedFrame

__all__ = ["random_feeds", "stack_frames"]


def random_feeds(batch: int, height: int, width: int, valid_hw: tuple[int, int] | None = None,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs (``rgb``, ``depth``, ``valid_hw``): smooth-ish float32 RGB and depth in
    0..255 (8x8 blocks plus noise, so that features and masks have structure) and ``valid_hw`` (default:
    the full ``height`` x ``width``)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (batch, 4, -(-height // 8), -(-width // 8))).astype(np.float32)
    up = base.repeat(8, axis=2).repeat(8, axis=3)[:, :, :height, :width]
    up += rng.normal(0, 8, up.shape).astype(np.float32)
    up = np.clip(up, 0, 255).astype(np.float32)
    vh, vw = valid_hw or (height, width)
    return dict(zip(INPUT_NAMES, (np.ascontiguousarray(up[:, :3]), np.ascontiguousarray(up[:, 3:4]),
                                  np.array([[vh, vw]] * batch, dtype=np.int64))))


def stack_frames(frames: Sequence[PreparedFrame]) -> dict[str, np.ndarray]:
    """One batch of graph inputs from prepared frames of the same padded size (in order; repeat a frame to
    fill a static batch)."""
    if not frames:
        raise ValueError("no frames to stack")
    return dict(zip(INPUT_NAMES, (np.stack([f.rgb for f in frames]), np.stack([f.depth for f in frames]),
                                  np.array([f.resized_hw for f in frames], dtype=np.int64))))
