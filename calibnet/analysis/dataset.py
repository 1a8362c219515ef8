"""Analysing a whole RGB-D SIS data set: a :class:`~calibnet.data.DatasetSpec` (COCO json, RGB and depth
folders) and, optionally, a folder of salient-object maps -> per-image rows, problems, the summary.

File rules:

- Instance masks: the json's non-crowd annotations (polygons or RLE), read by :func:`calibnet.data.load_records`.
- Depth map of ``<image_root>/<file_name>``: ``spec.depth_path(file_name)`` (the data set's depth rule), read
  by the one depth reader (:mod:`calibnet.runtime.core.readers`). 8-bit maps are used as stored (their direction
  is ``depth_direction``, default near = dark); 16-bit / float maps are converted to calibnet's near = dark
  8-bit form by :func:`calibnet.runtime.core.depth.depth_to_u8` first.
- Salient-object map of ``file_name``: ``<saliency_dir>/<file_name>`` with the suffix ``.png`` (else ``.jpg``,
  ``.bmp``, or the image's own suffix: the first that exists), 8-bit gray, binarized at ``>= 128``.

A missing, unreadable or mismatched (other size than the image) file is recorded as a problem naming the
file; the image's other statistics are still measured (a missing depth map only removes it from the depth
statistic, and so on). Only the RGB file's existence is checked: no statistic needs its pixels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm  # type: ignore[import-untyped]

from ..data.coco import ImageRecord, decode_segmentation, load_records
from ..data.registry import DatasetError, DatasetSpec, path_inside
from ..runtime.core.depth import DepthFormat, depth_to_u8
from ..runtime.core.errors import InputError
from ..runtime.core.readers import read_depth, read_gray, read_rgb
from .stats import SALIENCY_THRESHOLD, ImageStats, image_statistics, summarize

__all__ = ["SALIENCY_SUFFIXES", "DatasetAnalysis", "analyze_dataset", "read_saliency_map", "saliency_path"]

SALIENCY_SUFFIXES = (".png", ".jpg", ".bmp")
#: How many images each "worst" list names.
WORST_COUNT = 20


def saliency_path(saliency_dir: str | Path, file_name: str) -> Path:
    """The salient-object map of a json ``file_name`` (see the module docs); the ``.png`` path when none exists."""
    rel = Path(file_name)
    base = path_inside(saliency_dir, rel.name if rel.is_absolute() else rel, "salient-object map of")
    candidates = [base.with_suffix(s) for s in SALIENCY_SUFFIXES] + [base]
    return next((c for c in candidates if c.is_file()), candidates[0])


def read_saliency_map(path: str | Path) -> np.ndarray:
    """uint8 [H,W] gray salient-object map (an RGB map is converted to gray); :class:`InputError` naming the
    file when it is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"salient-object map not found: {p}")
    return read_gray(p)


@dataclass
class DatasetAnalysis:
    """The analysis of one data set: per-image rows, problems (one dict per named file), summary, worst lists."""

    name: str
    spec: DatasetSpec
    saliency_dir: Path | None
    rows: list[ImageStats]
    problems: list[dict[str, Any]]
    summary: dict[str, Any]
    worst: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self, per_image: bool = True) -> dict[str, Any]:
        """JSON-ready dict: paths, summary, worst lists, problems and (``per_image``) every image's row."""
        out: dict[str, Any] = {
            "name": self.name,
            "json_file": str(self.spec.json_file), "image_root": str(self.spec.image_root),
            "depth_root": str(self.spec.depth_root),
            "saliency_dir": str(self.saliency_dir) if self.saliency_dir else None,
            "seconds": self.seconds, **self.summary, "worst": self.worst, "problems": self.problems,
        }
        if per_image:
            out["per_image"] = [r.to_json() for r in self.rows]
        return out


def _image_size(spec: DatasetSpec, rec: ImageRecord) -> tuple[int, int]:
    if rec.height and rec.width:
        return int(rec.height), int(rec.width)
    for seg in rec.segmentations:
        if isinstance(seg, dict):
            h, w = (int(v) for v in seg["size"])
            return h, w
    rgb = read_rgb(spec.image_path(rec.file_name))  # the json has no size: decode the image (EXIF applied)
    return int(rgb.shape[0]), int(rgb.shape[1])


def _depth_u8(path: Path, direction: str) -> tuple[np.ndarray, str]:
    """(8-bit map, its direction): 8-bit maps as stored, others converted to near = dark."""
    raw = read_depth(path)
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    if raw.dtype == np.uint8:
        return raw, direction
    return depth_to_u8(raw, DepthFormat("auto", direction="near-dark")), "near-dark"


def _analyze_record(spec: DatasetSpec, rec: ImageRecord, saliency_dir: Path | None, center: str,
                    depth_direction: str, problems: list[dict[str, Any]]) -> ImageStats | None:
    def problem(path: Path | str, what: str) -> None:
        problems.append({"image_id": rec.image_id, "file": str(path), "problem": what})

    try:
        image_path = spec.image_path(rec.file_name)
    except DatasetError as exc:  # a name leaving the data set's folder: this record's problem
        problem(rec.file_name, str(exc))
        return None
    if not image_path.is_file():
        problem(image_path, "image not found (its labels are still analysed)")
    try:
        h, w = _image_size(spec, rec)
    except (InputError, DatasetError) as exc:
        problem(image_path, f"image size unknown (no height/width in the json, image unreadable): {exc}")
        return None
    masks = []
    for k, seg in enumerate(rec.segmentations):
        try:
            masks.append(decode_segmentation(seg, h, w))
        except (DatasetError, ValueError) as exc:
            problem(spec.json_file, f"image {rec.file_name}: annotation {k} cannot be decoded: {exc}")
    empty = sum(not m.any() for m in masks)
    if empty:
        problem(spec.json_file, f"image {rec.file_name}: {empty} annotation(s) with an empty mask (not counted)")
    salient = None
    if saliency_dir is not None:
        sal_path = saliency_path(saliency_dir, rec.file_name)
        try:
            smap = read_saliency_map(sal_path)
            if smap.shape != (h, w):
                problem(sal_path, f"salient-object map is {smap.shape[0]}x{smap.shape[1]}, the image {h}x{w}: "
                                  "not used")
            else:
                salient = smap >= SALIENCY_THRESHOLD
        except InputError as exc:
            problem(sal_path, str(exc))
    depth = None
    direction = depth_direction
    depth_path = spec.depth_path(rec.file_name)
    try:
        d, direction = _depth_u8(depth_path, depth_direction)
        if d.shape != (h, w):
            problem(depth_path, f"depth map is {d.shape[0]}x{d.shape[1]}, the image {h}x{w}: not used")
        else:
            depth = d
    except (InputError, DatasetError, ValueError) as exc:
        problem(depth_path, str(exc))
    if saliency_dir is not None and salient is None:
        depth = None  # no salient reference for this image: the depth statistic is not measured either
    return image_statistics(rec.image_id, rec.file_name, masks, salient, depth,
                            salient_is_union=saliency_dir is None, center=center, depth_direction=direction,
                            height=h, width=w)


def _worst(spec: DatasetSpec, rows: Sequence[ImageStats], saliency_dir: Path | None,
           count: int) -> dict[str, list[dict[str, Any]]]:
    def entry(r: ImageStats, **values: Any) -> dict[str, Any]:
        e = {"image_id": r.image_id, "file_name": r.file_name, "image": str(spec.image_path(r.file_name)),
             "depth": str(spec.depth_path(r.file_name))}
        if saliency_dir is not None:
            e["saliency"] = str(saliency_path(saliency_dir, r.file_name))
        return {**e, **values}

    out: dict[str, list[dict[str, Any]]] = {}
    leaving = [r for r in rows if r.outside_fraction]
    leaving.sort(key=lambda r: (-(r.outside_fraction or 0.0), r.object_iou or 0.0, r.image_id))
    out["instances_leave_salient_region"] = [
        entry(r, outside_fraction=r.outside_fraction, object_iou=r.object_iou, instances=r.num_instances)
        for r in leaving[:count]]
    obj_rows = sorted((r for r in rows if r.object_iou is not None), key=lambda r: (r.object_iou, r.image_id))
    out["objects_instances_lowest_iou"] = [
        entry(r, object_iou=r.object_iou, outside_fraction=r.outside_fraction, salient_fraction=r.salient_fraction,
              union_fraction=r.union_fraction) for r in obj_rows[:count] if (r.object_iou or 0.0) < 1.0]
    depth_rows = sorted((r for r in rows if r.depth_iou is not None), key=lambda r: (r.depth_iou, r.image_id))
    out["depth_disagrees"] = [entry(r, depth_iou=r.depth_iou, otsu_threshold=r.depth_threshold,
                                    near_fraction=r.near_fraction) for r in depth_rows[:count]]
    return out


def analyze_dataset(spec: DatasetSpec, saliency_dir: str | Path | None = None, *, center: str = "centroid",
                    depth_direction: str = "near-dark", limit: int | None = None, progress: bool = True,
                    worst: int = WORST_COUNT) -> DatasetAnalysis:
    """Every statistic of :mod:`calibnet.analysis.stats` on the images of ``spec`` (sorted by id; the first
    ``limit``). Without ``saliency_dir`` the union of instances stands in for the salient-object map.

    Raises :class:`calibnet.data.DatasetError` only when the json itself is missing or broken; missing or
    mismatched per-image files go to ``problems``.
    """

    start = time.perf_counter()
    records = load_records(spec)
    if limit is not None:
        records = records[:max(0, int(limit))]
    sal_dir = Path(saliency_dir) if saliency_dir is not None else None
    if sal_dir is not None and not sal_dir.is_dir():
        raise DatasetError(f"{spec.name}: salient-object map folder not found: {sal_dir}")
    problems: list[dict[str, Any]] = []
    rows: list[ImageStats] = []
    for rec in tqdm(records, desc=f"analyse {spec.name}", unit="img", disable=not progress, leave=False):
        row = _analyze_record(spec, rec, sal_dir, center, depth_direction, problems)
        if row is not None:
            rows.append(row)
    summary = summarize(rows, center=center, salient_source="maps" if sal_dir is not None else "union")
    summary["images_in_json"] = len(records)
    summary["problem_count"] = len(problems)
    return DatasetAnalysis(spec.name, spec, sal_dir, rows, problems, summary, _worst(spec, rows, sal_dir, worst),
                           time.perf_counter() - start)
