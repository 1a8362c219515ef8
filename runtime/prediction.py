"""The result type every backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Prediction", "masks_to_boxes"]


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """[K,H,W] bool -> [K,4] float32 xyxy (pixel edges); zeros for an empty mask."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
        if len(ys):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


@dataclass
class Prediction:
    """Salient instances of one frame, sorted by score (highest first)."""

    masks: np.ndarray  # bool [K,H0,W0]
    scores: np.ndarray  # float32 [K]
    boxes: np.ndarray  # float32 [K,4] xyxy
    depth_trust: np.ndarray  # float32 [3]: DSA of kernel branch, WSF-T3, WSF-res2
    kernel_index: np.ndarray  # int64 [K] the kernel each instance came from
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: pre, infer, post

    def __len__(self) -> int:
        return len(self.scores)

    def rle(self) -> list[dict[str, Any]]:
        """COCO run-length encodings of the masks (pycocotools), counts as str."""
        from pycocotools import mask as mask_utils  # type: ignore[import-untyped]

        out = []
        for m in self.masks:
            r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            r["counts"] = r["counts"].decode("ascii")
            out.append(r)
        return out

    def coco_results(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO results entries (segmentation RLE, score, category, image id)."""
        return [
            {"image_id": image_id, "category_id": category_id, "segmentation": r, "score": float(s)}
            for r, s in zip(self.rle(), self.scores)
        ]
