"""COCO-style mask evaluation (AP, AP50, AP70) for any backend; importable without torch.

- :func:`evaluate_coco`: a ground-truth json and a results json -> metrics in percent.
- :func:`run_eval`: a :class:`calibnet.runtime.Runtime` and a :class:`calibnet.data.DatasetSpec` ->
  predictions, results json, metrics.
- ``calibnet-eval``: the command line (:mod:`calibnet.cli.eval`).
"""

from __future__ import annotations

from .coco_eval import STAT_NAMES, EvaluationError, ap_at_iou, evaluate_coco
from .runner import predict_dataset, run_eval

__all__ = ["STAT_NAMES", "EvaluationError", "ap_at_iou", "evaluate_coco", "predict_dataset", "run_eval"]
