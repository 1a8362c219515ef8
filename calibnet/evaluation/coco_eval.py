"""COCO mask AP with the paper's columns (AP, AP50, AP70), numpy + pycocotools only (no torch).

AP, AP50, AP75, APs/m/l and AR are COCOeval's ``stats``. AP70 is not among them: it is read from the
accumulated ``precision`` array [T, R, K, A, M] at the IoU threshold 0.70 (T index 4 of 0.50:0.05:0.95),
all recall points, all categories, area "all", 100 detections, averaging the entries that are not -1 --
exactly how ``COCOeval.summarize`` computes AP50 and AP75. Every value is in percent; a value COCOeval
leaves undefined (-1: no ground truth in that area range) is ``nan``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils  # type: ignore[import-untyped]
from pycocotools.coco import COCO  # type: ignore[import-untyped]
from pycocotools.cocoeval import COCOeval  # type: ignore[import-untyped]

__all__ = ["EvaluationError", "STAT_NAMES", "ap_at_iou", "evaluate_coco", "load_results"]

#: The 12 entries of ``COCOeval.stats`` for segm/bbox, in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


class EvaluationError(ValueError):
    """Ground truth or results that cannot be evaluated; the message names the file and the problem."""


def _quiet(fn: Any, *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _load_gt(gt_json_path: str | Path) -> Any:

    path = Path(gt_json_path)
    data = _read_json(path, "ground truth")
    if not isinstance(data, dict) or "images" not in data:
        raise EvaluationError(f"{path} is not a COCO instances json (no 'images')")
    data.setdefault("annotations", [])
    data.setdefault("categories", [{"id": 1, "name": "foreground"}])
    sizes = {img.get("id"): (int(img["height"]), int(img["width"])) for img in data["images"]}
    for ann in data["annotations"]:  # pycocotools needs these; detectron2-style jsons may omit them
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = _segm_area(ann.get("segmentation"), sizes.get(ann.get("image_id")))
    gt = COCO()
    gt.dataset = data
    _quiet(gt.createIndex)
    return gt


def _read_json(path: Path, what: str) -> Any:
    """The parsed json file; :class:`EvaluationError` naming the file when it is missing or unreadable."""
    if not path.is_file():
        raise EvaluationError(f"{what} json not found: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"cannot read {what} {path}: {exc}") from None


def _segm_area(seg: Any, hw: tuple[int, int] | None) -> float:

    if seg is None or hw is None:
        return 0.0
    h, w = hw
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    return float(mask_utils.area(rle))


def load_results(results: str | Path | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The detections of a COCO results json (a copy of the list when given one); :class:`EvaluationError`
    naming the file when it is missing, unreadable or not a list."""
    if isinstance(results, (str, Path)):
        path = Path(results)
        loaded = _read_json(path, "results")
        if not isinstance(loaded, list):
            raise EvaluationError(f"{path}: a COCO results json is a list of detections")
        return loaded
    return copy.deepcopy(list(results))


def _results_coco(gt: Any, results: list[dict[str, Any]]) -> Any:
    """The detections as a COCO object (pycocotools ``loadRes``, which cannot take an empty list)."""

    if results:
        if any("segmentation" not in r for r in results):
            raise EvaluationError("every detection needs a 'segmentation' (mask AP)")
        return _quiet(gt.loadRes, results)
    dt = COCO()
    dt.dataset = {"images": list(gt.dataset["images"]), "categories": copy.deepcopy(gt.dataset["categories"]),
                  "annotations": []}
    _quiet(dt.createIndex)
    return dt


def ap_at_iou(precision: np.ndarray, iou_thresholds: np.ndarray, iou: float, area_index: int = 0,
              maxdet_index: int = -1) -> float:
    """Mean of the defined entries (> -1) of ``precision[t, :, :, area_index, maxdet_index]`` at the
    threshold ``iou`` (a fraction, -1 if nothing is defined), as ``COCOeval.summarize`` does for AP50/AP75."""
    t = np.where(np.isclose(iou_thresholds, iou))[0]
    if not len(t):
        raise ValueError(f"IoU {iou} is not one of the evaluated thresholds {list(iou_thresholds)}")
    p = precision[t[0], :, :, area_index, maxdet_index]
    p = p[p > -1]
    return float(p.mean()) if p.size else -1.0


def evaluate_coco(gt_json_path: str | Path, results_json_path: str | Path | Sequence[dict[str, Any]],
                  img_ids: Sequence[int] | None = None, use_cats: bool = True,
                  size_bins: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Mask (segm) AP of COCO results against a COCO ground truth, in percent.

    Args:
        gt_json_path: COCO instances json (polygon or RLE segmentations).
        results_json_path: COCO results json (or the list itself): ``image_id``, ``category_id``,
            ``segmentation`` (RLE), ``score``. An empty list gives AP 0 (no crash).
        img_ids: evaluate these images only (default: every image of the ground truth).
        use_cats: COCOeval ``useCats``; False evaluates class-agnostically.
        size_bins: optional size classes relative to the image, ``label -> (lo, hi)`` in instance pixels /
            image pixels (e.g. ``{"small": (0, 0.01)}``): a second COCOeval run whose area ranges are these
            (inclusive, as COCOeval's; ground truth outside a range is ignored, unmatched detections outside
            it too) gives ``by_size[label] = {"AP", "AP50", "AP70", "num_gt"}``. COCO's APs/m/l use absolute
            pixel areas (32^2, 96^2), which mean different things at different image resolutions.

    Returns ``AP``, ``AP50``, ``AP70`` (the paper's columns), ``AP75``, ``APs``, ``APm``, ``APl``, ``AR1``,
    ``AR10``, ``AR100``, ``ARs``, ``ARm``, ``ARl`` (percent; ``nan`` where COCOeval has no ground truth to
    measure), and ``num_images``, ``num_gt``, ``num_detections``.
    """

    gt = _load_gt(gt_json_path)
    results = load_results(results_json_path)  # a copy
    # with a "bbox" key pycocotools' loadRes takes the box area as the detection's area (for the
    # small/medium/large ranges); mask evaluation must use the mask area, as detectron2 does
    for r in results:
        r.pop("bbox", None)
    ids = sorted(gt.getImgIds()) if img_ids is None else [int(i) for i in img_ids]
    unknown = set(ids) - set(gt.getImgIds())
    if unknown:
        raise EvaluationError(f"image ids not in the ground truth: {sorted(unknown)[:5]}")
    foreign = {r.get("image_id") for r in results} - set(gt.getImgIds())
    if foreign:  # results of another data set: an error, not "AP 0"
        raise EvaluationError(f"results name image ids the ground truth does not have: {sorted(map(str, foreign))[:5]}")
    wanted = set(ids)
    results = [r for r in results if r.get("image_id") in wanted]
    dt = _results_coco(gt, results)
    ev = COCOeval(gt, dt, "segm")
    ev.params.imgIds = ids
    ev.params.useCats = int(bool(use_cats))
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    out: dict[str, Any] = {name: float(v) * 100.0 if v >= 0 else float("nan") for name, v in zip(STAT_NAMES, ev.stats)}
    ap70 = ap_at_iou(ev.eval["precision"], ev.params.iouThrs, 0.70,
                     area_index=ev.params.areaRngLbl.index("all"), maxdet_index=ev.params.maxDets.index(100))
    out["AP70"] = ap70 * 100.0 if ap70 >= 0 else float("nan")
    gt_anns = gt.loadAnns(gt.getAnnIds(imgIds=ids, iscrowd=False))
    out.update(num_images=len(ids), num_gt=len(gt_anns), num_detections=len(results))
    if size_bins:
        out["by_size"] = _ap_by_relative_size(gt, dt, ids, use_cats, size_bins)
    return out


def _ap_by_relative_size(gt: Any, dt: Any, ids: list[int], use_cats: bool,
                         size_bins: Mapping[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """AP / AP50 / AP70 (percent, nan without ground truth) per relative size class: ``area`` of every ground
    truth and detection divided by its image's pixels, then COCOeval with those area ranges."""

    pixels = {i["id"]: float(i["height"]) * float(i["width"]) for i in gt.dataset["images"]}
    for coco in (gt, dt):
        for ann in coco.anns.values():
            ann["area"] = float(ann["area"]) / pixels[ann["image_id"]]
    labels = list(size_bins)
    ev = COCOeval(gt, dt, "segm")
    ev.params.imgIds = ids
    ev.params.useCats = int(bool(use_cats))
    ev.params.areaRng = [[float(lo), float(hi)] for lo, hi in size_bins.values()]
    ev.params.areaRngLbl = labels
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    precision = ev.eval["precision"]
    wanted = set(ids)
    out: dict[str, dict[str, float]] = {}
    for a, (label, (lo, hi)) in enumerate(size_bins.items()):
        p = precision[:, :, :, a, -1]
        defined = p[p > -1]
        row = {"AP": float(defined.mean()) * 100.0 if defined.size else float("nan")}
        for name, iou in (("AP50", 0.5), ("AP70", 0.7)):
            v = ap_at_iou(precision, ev.params.iouThrs, iou, area_index=a)
            row[name] = v * 100.0 if v >= 0 else float("nan")
        row["num_gt"] = sum(1 for g in gt.anns.values() if g["image_id"] in wanted and not g.get("iscrowd", 0)
                            and lo <= g["area"] <= hi)
        out[label] = row
    return out
