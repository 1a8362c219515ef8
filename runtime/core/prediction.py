"""The result type every backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils  # type: ignore[import-untyped]

from .depth_health import DepthHealth

__all__ = ["Prediction", "mask_to_rle"]


@dataclass
class Prediction:
    """Salient instances of one frame, sorted by score (highest first)."""

    masks: np.ndarray  # bool [K,H0,W0]
    scores: np.ndarray  # float32 [K]
    boxes: np.ndarray  # float32 [K,4] xyxy
    depth_trust: np.ndarray  # float32 [3]: DSA of kernel branch, WSF-T3, WSF-res2
    kernel_index: np.ndarray  # int64 [K] the kernel each instance came from
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: pre, infer, post
    track_ids: np.ndarray | None = None  # int64 [K] stable IDs across frames (-1: not tracked), see tracking.py
    #: float32 [K]: median of the model's 8-bit depth (its convention, near-dark: larger = farther) inside each
    #: mask (NaN for an empty mask); None when the depth is not known (e.g. an answer without it)
    instance_depth: np.ndarray | None = None
    depth_health: DepthHealth | None = None  # the frame's depth health (invalid share, trust, verdict)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def image_hw(self) -> tuple[int, int]:
        """(H0, W0) of the input frame."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def saliency_map(self) -> np.ndarray:
        """Per-pixel saliency float32 [H0,W0] in 0..1: the highest score of the instances covering the
        pixel (0 where none does)."""
        out = np.zeros(self.image_hw, np.float32)
        for m, s in zip(self.masks[::-1], self.scores[::-1]):  # ascending scores: the highest is written last
            out[m] = np.float32(s)
        return out

    def rle(self) -> list[dict[str, Any]]:
        """COCO run-length encodings of the masks (:func:`mask_to_rle`)."""
        return [mask_to_rle(m) for m in self.masks]

    def coco_results(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO results entries (segmentation RLE, score, category, image id; ``track_id`` when tracked,
        ``instance_depth`` and the frame's ``depth_health`` when known)."""
        out = [
            {"image_id": image_id, "category_id": category_id, "segmentation": r, "score": float(s)}
            for r, s in zip(self.rle(), self.scores)
        ]
        for k, entry in enumerate(out):
            if self.track_ids is not None:
                entry["track_id"] = int(self.track_ids[k])
            if self.instance_depth is not None:
                d = float(self.instance_depth[k])
                entry["instance_depth"] = d if np.isfinite(d) else None
            if self.depth_health is not None:
                entry["depth_health"] = self.depth_health.to_dict()
        return out


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE (pycocotools) of a bool [H,W] mask: ``{"size": [H, W], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
