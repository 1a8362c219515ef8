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

__all__ = ["ImageRecord", "Segmentation", "clip_polygon", "decode_segmentation", "load_records", "rasterize_polygons"]

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
        return seg if "counts" in seg and "size" in seg else None
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
        owner = records.get(int(ann.get("image_id", -1)))
        seg = _clean_segmentation(ann.get("segmentation"))
        if owner is not None and seg is not None:
            owner.segmentations.append(seg)
    return [records[k] for k in sorted(records)]


def _clip_half_plane(xy: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    """One Sutherland-Hodgman step: the part of a closed polygon [N,2] on one side of ``x[axis] = bound``."""
    if len(xy) == 0:
        return xy
    v = xy[:, axis]
    inside = v <= bound if keep_below else v >= bound
    nxt = np.roll(xy, -1, axis=0)
    nxt_inside = np.roll(inside, -1)
    dv = nxt[:, axis] - v
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dv != 0, (bound - v) / dv, 0.0)
    cross = xy + t[:, None] * (nxt - xy)
    cross[:, axis] = bound
    # per edge (p -> next): both in -> next; leaving -> crossing; entering -> crossing, next; both out -> nothing
    pts = np.stack([cross, nxt], axis=1)  # [N,2,2]
    emit = np.stack([inside != nxt_inside, nxt_inside], axis=1)  # [N,2]
    return pts[emit]


def clip_polygon(xy: np.ndarray, width: float, height: float) -> np.ndarray:
    """The part of a polygon [N,2] inside the box [0,width] x [0,height] (Sutherland-Hodgman; a concave
    polygon cut into pieces keeps zero-area connecting edges on the border, which rasterize to nothing)."""
    for axis, bound, below in ((0, 0.0, False), (0, float(width), True), (1, 0.0, False), (1, float(height), True)):
        xy = _clip_half_plane(xy, axis, bound, below)
    return xy


def rasterize_polygons(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """bool [height, width] union of flat [x0, y0, x1, y1, ...] polygons (pycocotools rasterization, as
    detectron2's ``polygons_to_bitmask``). Polygons are clipped to the image first, as detectron2's crop
    does (with shapely) for polygon annotations."""
    clipped = []
    for p in polygons:
        xy = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        if (xy.min(0) < 0).any() or xy[:, 0].max() > width or xy[:, 1].max() > height:
            xy = clip_polygon(xy, width, height)
        if len(xy) >= 3:
            clipped.append(xy.reshape(-1).tolist())
    if not clipped:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects(clipped, height, width)
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
