"""COCO-json instance annotations: reading a data set's records and decoding masks (numpy + pycocotools).

The records follow detectron2's ``load_coco_json`` as the official code uses it: images sorted by id,
``iscrowd`` annotations skipped, images without annotations kept, polygons with fewer than three
points dropped (an annotation left without a valid polygon is skipped). Segmentations may be polygons
(lists of ``[x0, y0, x1, y1, ...]``) or RLE (compressed ``counts`` strings or uncompressed lists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils  # type: ignore[import-untyped]

from .registry import DatasetError, DatasetSpec

__all__ = ["ImageRecord", "Segmentation", "decode_segmentation", "load_records", "rasterize_polygons"]

#: A polygon segmentation (list of flat coordinate arrays) or an RLE dict.
Segmentation = list[np.ndarray] | dict[str, Any]


@dataclass
class ImageRecord:
    """One image of a data set and its (non-crowd) instance segmentations."""

    image_id: int
    file_name: str
    height: int | None
    width: int | None
    segmentations: list[Segmentation] = field(default_factory=list)


def _clean_segmentation(seg: Any) -> Segmentation | None:
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            return None
        return seg
    if isinstance(seg, list):
        polys = [np.asarray(p, dtype=np.float64) for p in seg]
        polys = [p for p in polys if p.ndim == 1 and len(p) % 2 == 0 and len(p) >= 6]
        return polys or None
    return None


def load_records(spec: DatasetSpec) -> list[ImageRecord]:
    """The images of ``spec.json_file`` (sorted by id) with their non-crowd segmentations.

    Raises :class:`DatasetError` naming the file when it is missing or not a COCO instances json.
    """
    path = spec.json_file
    if not path.is_file():
        raise DatasetError(f"{spec.name}: annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{spec.name}: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{spec.name}: {path} is not a COCO instances json (no 'images' list)")
    records: dict[int, ImageRecord] = {}
    for img in data["images"]:
        try:
            rec = ImageRecord(int(img["id"]), str(img["file_name"]), img.get("height"), img.get("width"))
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{spec.name}: {path}: image entry without id/file_name: {img!r:.200}") from None
        records[rec.image_id] = rec
    for ann in data.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        rec = records.get(int(ann.get("image_id", -1)))
        if rec is None:
            continue
        seg = _clean_segmentation(ann.get("segmentation"))
        if seg is not None:
            rec.segmentations.append(seg)
    return [records[k] for k in sorted(records)]


def rasterize_polygons(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """bool [height, width] union of polygons (pycocotools rasterization, as detectron2's
    ``polygons_to_bitmask``). Coordinates are clamped to the image first, which leaves the inside of the
    image unchanged (the part of a polygon outside the image only moves onto its border)."""
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    clamped = []
    for p in polygons:
        q = np.asarray(p, dtype=np.float64).reshape(-1, 2).copy()
        q[:, 0] = np.clip(q[:, 0], 0, width)
        q[:, 1] = np.clip(q[:, 1], 0, height)
        clamped.append(q.reshape(-1).tolist())
    rles = mask_utils.frPyObjects(clamped, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def decode_segmentation(seg: Segmentation, height: int, width: int) -> np.ndarray:
    """bool [height, width] mask of a polygon list or an RLE dict (compressed or uncompressed)."""
    if isinstance(seg, dict):
        h, w = (int(v) for v in seg["size"])
        if (h, w) != (height, width):
            raise DatasetError(f"RLE size {(h, w)} differs from the image size {(height, width)}")
        counts = seg["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(rle).astype(bool)
    return rasterize_polygons(seg, height, width)
