"""Training batches: a deterministic synthetic stream and a wrapper over a data-set DataLoader.

Both yield the batch format of ``calibnet.data.collate_rgbd``: ``rgb`` float32 [B,3,H,W] in 0..255
(zero-padded), ``depth`` float32 [B,1,H,W], ``image_sizes`` int64 [B,2] (valid h, w), ``masks`` a
list of bool [K_i,H,W] padded to (H, W), ``image_ids``.

A batch source is indexed by iteration (``source.batch(it)``) so that a resumed run sees the same
batches as an uninterrupted one where the source allows it (the synthetic stream does; a shuffled
DataLoader is re-seeded with the start iteration instead).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from calibnet.data.synthetic import _draw_count, make_scene
from calibnet.data.transforms import DEPTH_AUGMENT_STREAM
from calibnet.runtime.core.resize import pil_bilinear_resize_u8, shortest_edge_size

__all__ = ["BatchSource", "LoaderBatches", "SyntheticBatches", "collate_arrays"]


class BatchSource(Protocol):
    """Anything that gives the training batch of an iteration."""

    def batch(self, iteration: int) -> dict[str, Any]: ...


def collate_arrays(rgbs: Sequence[np.ndarray], depths: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                   image_ids: Sequence[int] | None = None, size_divisibility: int = 32) -> dict[str, Any]:
    """Pad uint8 RGB [h,w,3], depth [h,w] and bool masks [K,h,w] of each image into one batch
    (:func:`calibnet.data.collate_rgbd` on array items)."""
    from calibnet.data.dataset import collate_rgbd  # imports torch

    ids = list(image_ids) if image_ids is not None else list(range(len(rgbs)))
    items = [{"rgb": r.transpose(2, 0, 1), "depth": dp[None], "masks": m, "image_id": i, "file_name": "",
              "orig_hw": r.shape[:2]} for r, dp, m, i in zip(rgbs, depths, masks, ids)]
    return collate_rgbd(items, size_divisibility)


def _resize_masks(masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize bool masks like rasterizing a resized polygon: bilinear on 0/1, then >= 0.5."""
    h, w = hw
    resized = [cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5 for m in masks]
    return np.array(resized, dtype=bool).reshape(-1, h, w)


@dataclass
class SyntheticBatches:
    """Endless synthetic RGB-D scenes (``calibnet.data.synthetic.make_scene``), deterministic per iteration.

    Each scene is generated at ``height`` x ``width`` and resized like the runtime's test path
    (shortest edge ``short``, at most ``max_size``; Pillow-exact bilinear), so a model trained here
    sees what ``Runtime.predict`` feeds it; ``flip`` mirrors half of the scenes (the official
    augmentation). ``n_salient``/``n_clutter`` are ranges (inclusive) drawn per scene. ``depth_augment``
    corrupts the scene's depth at its generated size, before the resize, as the robustness study corrupts a
    data set's depth maps before ``Runtime.predict`` (its own draws: the scenes are those of a run without it).
    """

    batch_size: int = 2
    height: int = 320
    width: int = 480
    short: int = 320
    max_size: int = 480
    seed: int = 1_000_000
    rank: int = 0
    world_size: int = 1
    flip: bool = True
    n_salient: tuple[int, int] = (1, 3)
    n_clutter: tuple[int, int] = (2, 5)
    depth_augment: Any = None  # calibnet.data.transforms.DepthAugment or None

    def scene(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb u8 [h,w,3], depth u8 [h,w], masks bool [K,h,w]) of one training scene."""

        rng = np.random.default_rng(seed + 7_777_777)
        s = make_scene(seed, height=self.height, width=self.width, n_salient=_draw_count(rng, self.n_salient),
                       n_clutter=_draw_count(rng, self.n_clutter))
        h, w = shortest_edge_size(self.height, self.width, self.short, self.max_size)
        rgb, depth, masks = s.rgb, s.depth, s.masks
        if self.depth_augment is not None:
            depth = self.depth_augment(depth, np.random.default_rng([seed, DEPTH_AUGMENT_STREAM]))
        if (h, w) != (self.height, self.width):
            rgb = pil_bilinear_resize_u8(rgb, (h, w))
            depth = pil_bilinear_resize_u8(depth, (h, w))
            masks = _resize_masks(masks, (h, w))
        masks = masks[masks.any(axis=(1, 2))]
        if self.flip and rng.random() < 0.5:
            rgb, depth, masks = rgb[:, ::-1], depth[:, ::-1], masks[:, :, ::-1]
        return rgb, depth, masks

    def batch(self, iteration: int) -> dict[str, Any]:
        """The batch of this process at ``iteration``."""
        first = self.seed + (iteration * self.world_size + self.rank) * self.batch_size  # disjoint across ranks
        seeds = list(range(first, first + self.batch_size))
        rgbs, depths, masks = zip(*(self.scene(s) for s in seeds))
        return collate_arrays(rgbs, depths, masks, seeds)


class LoaderBatches:
    """Batches from a DataLoader factory ``make_loader(start_iter)``.

    ``calibnet.data.build_train_loader`` gives an infinite, keyed stream; created with the iteration
    of the first request, a resumed run continues the same stream (same images and augmentation).
    An epoch-wise loader is re-created when it is exhausted.
    """

    def __init__(self, make_loader: Any) -> None:
        self._make = make_loader
        self._it: Iterator[dict[str, Any]] | None = None

    def batch(self, iteration: int) -> dict[str, Any]:
        batch = None if self._it is None else next(self._it, None)
        if batch is None:  # the first request, or an epoch-wise loader exhausted
            self._it = iter(self._make(iteration))
            batch = next(self._it)
        return batch
