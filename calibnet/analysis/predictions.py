"""A model's predictions against the ground truth on the data-set axes (``calibnet-analyze --results``).

Two kinds of numbers, both per data set:

- **AP along the axes**, by :func:`calibnet.evaluate_coco` (pycocotools, class-agnostic: RGB-D SIS has one
  class): overall; by relative instance size (:data:`~calibnet.analysis.stats.SIZE_CLASSES`, COCOeval area
  ranges on instance pixels / image pixels); by the image's number of ground-truth instances (1, 2, 3, 4+;
  images without instances have no AP); by the image's depth/saliency IoU (below / at least 0.5) and, with
  salient-object maps, by its objects/instances IoU (below / at least 0.5).
- **The data-set statistics of the predictions**: every prediction with ``score >= score_threshold``
  (default 0.5; AP itself uses every detection) is an instance; :func:`~calibnet.analysis.stats.summarize`
  gives its count, size and centre distributions, and per image ``IoU(predicted union, ground-truth union)``
  and the share of predicted pixels outside the ground-truth instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.coco import decode_segmentation, load_records
from ..data.registry import DatasetError
from ..evaluation.coco_eval import EvaluationError, evaluate_coco, load_results
from .dataset import DatasetAnalysis
from .stats import SIZE_CLASSES, ImageStats, image_statistics, summarize

__all__ = ["COUNT_GROUPS", "analyze_predictions"]

#: Images grouped by their number of ground-truth instances: label -> (lo, hi) inclusive.
COUNT_GROUPS: dict[str, tuple[int, int]] = {"1": (1, 1), "2": (2, 2), "3": (3, 3), "4+": (4, 10**9)}


def _group_ap(json_file: Path, dets: list[dict[str, Any]], ids: Sequence[int]) -> dict[str, Any]:
    """Class-agnostic AP of the images ``ids`` (a group of an axis) and their ground-truth count."""
    m = evaluate_coco(json_file, dets, img_ids=ids, use_cats=False)
    return {"images": len(ids), "num_gt": m["num_gt"], "AP": m["AP"], "AP50": m["AP50"], "AP70": m["AP70"]}


def analyze_predictions(gt: DatasetAnalysis, results: str | Path | list[dict[str, Any]],
                        score_threshold: float = 0.5, center: str = "centroid") -> dict[str, Any]:
    """Predictions (COCO results: ``image_id``, ``segmentation`` RLE, ``score``) vs the ground truth analysed
    in ``gt`` (only its images are used: a ``limit`` there limits this too). JSON-ready dict."""

    try:
        dets = load_results(results)
    except EvaluationError as exc:
        raise DatasetError(str(exc)) from None
    rows_by_id = {r.image_id: r for r in gt.rows}
    ids = sorted(rows_by_id)
    foreign = sorted({d.get("image_id") for d in dets} - rows_by_id.keys(), key=str)
    if dets and foreign and len(foreign) == len({d.get("image_id") for d in dets}):
        raise DatasetError(f"the results name none of the {len(ids)} images of {gt.name} (image ids "
                           f"{', '.join(map(str, foreign[:5]))}...): results must use the ground-truth json's image "
                           "ids, as calibnet-eval's do")
    dets = [d for d in dets if d.get("image_id") in rows_by_id]
    try:
        overall = evaluate_coco(gt.spec.json_file, dets, img_ids=ids, use_cats=False, size_bins=SIZE_CLASSES)
        by_count: dict[str, Any] = {}
        for label, (lo, hi) in COUNT_GROUPS.items():
            group = [i for i in ids if lo <= rows_by_id[i].num_instances <= hi]
            if group:
                by_count[label] = _group_ap(gt.spec.json_file, dets, group)
        by_consistency: dict[str, Any] = {}
        for key in ("depth_iou", "object_iou"):
            measured = [i for i in ids if getattr(rows_by_id[i], key) is not None]
            for label, keep in (("< 0.5", lambda v: v < 0.5), (">= 0.5", lambda v: v >= 0.5)):
                group = [i for i in measured if keep(getattr(rows_by_id[i], key))]
                if group:
                    by_consistency.setdefault(key, {})[label] = _group_ap(gt.spec.json_file, dets, group)
    except EvaluationError as exc:
        raise DatasetError(str(exc)) from None

    # statistics of the confident predictions, image by image, against the ground-truth union
    by_image: dict[int, list[dict[str, Any]]] = {}
    for d in dets:
        if float(d.get("score", 0.0)) >= score_threshold:
            by_image.setdefault(int(d["image_id"]), []).append(d)
    records = {r.image_id: r for r in load_records(gt.spec) if r.image_id in rows_by_id}
    pred_rows: list[ImageStats] = []
    problems: list[dict[str, Any]] = []
    for i in ids:
        row = rows_by_id[i]
        h, w = row.height, row.width
        gt_union = np.zeros((h, w), dtype=bool)
        for seg in records[i].segmentations:
            try:
                gt_union |= decode_segmentation(seg, h, w)
            except (DatasetError, ValueError):
                continue  # named in the ground-truth analysis' problems
        masks = []
        for d in by_image.get(i, []):
            try:
                masks.append(decode_segmentation(d["segmentation"], h, w))
            except (DatasetError, KeyError, TypeError, ValueError) as exc:
                problems.append({"image_id": i, "file": str(results) if isinstance(results, (str, Path)) else
                                 "results", "problem": f"a detection of image {row.file_name} cannot be decoded: "
                                 f"{type(exc).__name__}: {exc}"})
        pred_rows.append(image_statistics(i, row.file_name, masks, gt_union, center=center, height=h, width=w))
    stats = summarize(pred_rows, center=center, salient_source="maps")
    n_pred = np.array([r.num_instances for r in pred_rows])
    n_gt = np.array([rows_by_id[i].num_instances for i in ids])
    union_iou = [r.object_iou for r in pred_rows if r.object_iou is not None]
    comparison = {
        "count_exact": float((n_pred == n_gt).mean()) if ids else None,
        "count_mean_abs_error": float(np.abs(n_pred - n_gt).mean()) if ids else None,
        "count_mean_predicted": float(n_pred.mean()) if ids else None,
        "count_mean_ground_truth": float(n_gt.mean()) if ids else None,
        "union_iou_mean": float(np.mean(union_iou)) if union_iou else None,
        "union_iou_fraction_ge_0.5": float(np.mean(np.asarray(union_iou) >= 0.5)) if union_iou else None,
    }
    stats.pop("depth_saliency", None)  # predictions have no depth of their own
    consistency = stats.pop("objects_instances")
    return {
        "score_threshold": score_threshold,
        "detections": len(dets),
        "results_image_ids_not_in_ground_truth": foreign[:20],
        "AP": {k: overall[k] for k in ("AP", "AP50", "AP70", "APs", "APm", "APl")} | {"num_gt": overall["num_gt"]},
        "AP_by_size": overall["by_size"],
        "AP_by_instance_count": by_count,
        "AP_by_consistency": by_consistency,
        "comparison": comparison,
        "union_vs_ground_truth": {k: consistency[k] for k in ("mean_iou", "median_iou", "matching_curve",
                                                                 "mean_outside_fraction")},
        "statistics": stats,
        "problems": problems,
    }
