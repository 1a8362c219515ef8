"""Salient-object maps for a data set that has only instance labels (tests, benchmarks, demos).

:func:`write_saliency_maps` writes, for every image of a COCO-json data set, the union of its instance masks
as a 0/255 PNG named as :func:`calibnet.analysis.saliency_path` expects; ``drop_every=k`` leaves the last
instance of every k-th image out of the map, the paper's Fig. 7 case (an instance labelled outside the
salient region), so that the consistency statistics have something to find.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data.coco import decode_segmentation, load_records
from ..data.registry import DatasetSpec, path_inside

__all__ = ["write_saliency_maps"]


def write_saliency_maps(spec: DatasetSpec, out_dir: str | Path, drop_every: int = 0) -> list[int]:
    """Write ``<out_dir>/<file stem>.png`` per image; returns the ids of the images whose last instance was
    left out (``drop_every`` > 0 and the image has at least two instances). A file name that would leave
    ``out_dir`` is a :class:`~calibnet.data.registry.DatasetError` (checked for every image before anything is
    written)."""
    out = Path(out_dir)
    records = load_records(spec)
    paths = [path_inside(out, spec.relative_name(rec.file_name).with_suffix(".png"), f"{spec.name}: saliency map")
             for rec in records]
    out.mkdir(parents=True, exist_ok=True)
    dropped = []
    for k, (rec, path) in enumerate(zip(records, paths)):
        h, w = int(rec.height or 0), int(rec.width or 0)
        masks = [decode_segmentation(s, h, w) for s in rec.segmentations]
        if drop_every > 0 and k % drop_every == 0 and len(masks) >= 2:
            masks = masks[:-1]
            dropped.append(rec.image_id)
        union = np.any([np.zeros((h, w), bool), *masks], axis=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), union.astype(np.uint8) * 255)
    return dropped
