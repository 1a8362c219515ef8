"""Run a :class:`calibnet.runtime.Runtime` (any backend) over a data set and score it (no torch needed)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data.coco import load_records
from ..data.registry import DatasetError, DatasetSpec
from ..runtime.core.errors import InputError
from ..runtime.core.readers import read_depth, read_rgb
from .coco_eval import evaluate_coco

__all__ = ["DepthHook", "Observer", "predict_dataset", "run_eval"]

#: ``hook(depth, image_id) -> depth``: changes each depth map as read, before the runtime sees it (e.g. a
#: corruption of :mod:`calibnet.evaluation.depth_corruptions`)
DepthHook = Callable[[np.ndarray, int], np.ndarray]
#: ``observer(image_id, prediction)``: sees every Prediction (e.g. its depth health)
Observer = Callable[[int, Any], None]


def predict_dataset(runtime: Any, spec: DatasetSpec, progress: bool = True, limit: int | None = None,
                    category_id: int = 1, depth_hook: DepthHook | None = None,
                    observer: Observer | None = None) -> tuple[list[dict[str, Any]], list[int], float]:
    """COCO results of ``runtime`` on the images of ``spec`` (sorted by id, the first ``limit``).

    Images and depth maps are read by :mod:`calibnet.runtime.core.readers` (as the official test mapper: Pillow,
    EXIF orientation; depth maps of any bit depth, converted by the runtime); ``depth_hook`` may change each
    depth map first; the runtime resizes and pads them; ``observer`` sees each Prediction. Returns (results,
    image ids, seconds spent reading + predicting).
    """

    records = load_records(spec)
    if limit is not None:
        records = records[:max(0, int(limit))]
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    for rec in tqdm(records, desc=spec.name, unit="img", disable=not progress, leave=False):
        try:
            depth = read_depth(spec.depth_path(rec.file_name))
            if depth_hook is not None:
                depth = depth_hook(depth, rec.image_id)
            pred = runtime.predict(read_rgb(spec.image_path(rec.file_name)), depth)
        except InputError as exc:
            raise DatasetError(f"{spec.image_path(rec.file_name)}: {exc}") from None
        if observer is not None:
            observer(rec.image_id, pred)
        results.extend(pred.coco_results(rec.image_id, category_id))
    return results, [r.image_id for r in records], time.perf_counter() - start


def run_eval(runtime: Any, spec: DatasetSpec, out_dir: str | Path | None = None, progress: bool = True,
             limit: int | None = None, depth_hook: DepthHook | None = None,
             observer: Observer | None = None) -> dict[str, Any]:
    """Mask AP of ``runtime`` on the data set ``spec``.

    Runs ``runtime.predict`` on every image (or the first ``limit``, by image id; ``depth_hook`` and
    ``observer`` as in :func:`predict_dataset`), writes the COCO results to ``<out_dir>/<spec.name>_results.json``
    when ``out_dir`` is given, and evaluates them with :func:`calibnet.evaluate_coco` on the same images.

    Returns the metrics of :func:`evaluate_coco` (``AP``, ``AP50``, ``AP70``... in percent) plus
    ``results_json`` (the path as str, or None without ``out_dir``), ``images`` (count), ``seconds``
    (reading + inference + post-processing, wall clock) and ``ms_per_image``.
    """
    spec.check()
    # results name the data set's (first) category: its single category, else a class-agnostic evaluation
    cats = json.loads(spec.json_file.read_text()).get("categories") or [{"id": 1}]
    results, ids, seconds = predict_dataset(runtime, spec, progress=progress, limit=limit,
                                            category_id=int(cats[0]["id"]), depth_hook=depth_hook, observer=observer)
    results_json = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{spec.name}_results.json"
        path.write_text(json.dumps(results))
        results_json = str(path)
    metrics = evaluate_coco(spec.json_file, results, img_ids=ids, use_cats=len(cats) == 1)
    metrics.update(results_json=results_json, images=len(ids), seconds=seconds,
                   ms_per_image=1000.0 * seconds / len(ids) if ids else float("nan"))
    return metrics
