"""The CalibNet paper's data-set analysis (Section III-B, Figs. 4-7) for any RGB-D SIS data set; no torch.

- :mod:`calibnet.analysis.stats`: the exact definitions, per image and per data set (numpy + OpenCV).
- :func:`analyze_dataset`: a :class:`calibnet.data.DatasetSpec` (+ optional salient-object maps) ->
  :class:`DatasetAnalysis` (per-image rows, problems naming files, summary, the images to look at).
- :func:`analyze_predictions`: COCO results vs the ground truth on the same axes (AP by size, by count...).
- :func:`write_reports`: ``analysis.json``, ``summary.md`` and the figures (matplotlib, optional).
- ``calibnet-analyze``: the command line (:mod:`calibnet.cli.analyze`).

Typical use::

    from calibnet.data import get_dataset_spec
    from calibnet.analysis import analyze_dataset, write_reports

    a = analyze_dataset(get_dataset_spec("dsis_test", "/data"), saliency_dir="/data/DSIS/GT")
    a.summary["depth_saliency"]["fraction_iou_ge_0.5"]
    write_reports([a], "out/analysis")
"""

from __future__ import annotations

from .dataset import DatasetAnalysis, analyze_dataset, read_saliency_map, saliency_path
from .predictions import analyze_predictions
from .report import markdown_summary, write_reports
from .stats import (
    MATCH_THRESHOLDS,
    SIZE_CLASSES,
    SIZE_EDGES,
    ImageStats,
    image_statistics,
    mask_iou,
    matching_curve,
    near_foreground,
    otsu_threshold,
    summarize,
)
from .synthetic import write_saliency_maps

__all__ = ["MATCH_THRESHOLDS", "SIZE_CLASSES", "SIZE_EDGES", "DatasetAnalysis", "ImageStats", "analyze_dataset",
           "analyze_predictions", "image_statistics", "markdown_summary", "mask_iou",
           "matching_curve", "near_foreground", "otsu_threshold", "read_saliency_map", "saliency_path", "summarize",
           "write_reports", "write_saliency_maps"]
