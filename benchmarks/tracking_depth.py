"""Depth-aware tracking benchmark: IDF1 and ID switches of ``InstanceTracker`` with and without instance depth.

Examples:
  python -m calibnet.benchmarks.tracking_depth                      # 20 sequences, simulated detector
  python -m calibnet.benchmarks.tracking_depth --model out/train-r18/model.onnx --height 128 --width 192

The sequences (:func:`calibnet.data.sequences.make_crossing_sequence`): pairs of objects crossing at
different depths, the far one hidden behind the near one for a few frames, noisy depth maps with holes;
the ground-truth identities come from the generator. The detections of each frame are either

- simulated (default): the exact visible masks, except that two touching instances are seen as one with
  probability ``--merge`` (the union: what a segmentation model does when objects touch) and each
  detection is dropped with probability ``--miss``; each detection's depth is the median of the noisy
  8-bit depth map inside it (:func:`calibnet.runtime.core.postprocess.instance_depths`, as the runtime does);
- or a model's (``--model``, any backend :class:`calibnet.runtime.Runtime` opens): its predictions and their
  ``instance_depth``.

The same detections go through a fresh tracker twice, in one run: without their depth (masks only: the same tracker
matching masks alone) and with it. Metrics (:mod:`calibnet.evaluation.mot`, mask IoU >= 0.5): IDF1,
ID switches, MOTA, summed over the sequences. Prints a table and one JSON line (``--json-out``: also a
file). No timing: the figures depend on the seed only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from calibnet.data.sequences import MovingFrame, make_crossing_sequence
from calibnet.evaluation.mot import combine, mot_metrics
from calibnet.runtime.apps.tracking import InstanceTracker
from calibnet.runtime.core.postprocess import instance_depths, masks_to_boxes
from calibnet.runtime.core.prediction import Prediction

__all__ = ["TrackingBenchOptions", "run_tracking_bench", "simulated_detections", "track_sequences"]


@dataclass(frozen=True)
class TrackingBenchOptions:
    """The sequences (seeds ``seed`` .. ``seed + sequences - 1``) and the simulated detector of a run."""

    sequences: int = 20
    seed: int = 0
    frames: int = 40
    height: int = 240
    width: int = 320
    pairs: int = 2
    speed: float = 3.0
    depth_noise: float = 3.0
    holes: float = 0.02
    miss: float = 0.1
    merge: float = 0.5


def simulated_detections(frame: MovingFrame, rng: np.random.Generator, miss: float, merge: float,
                         min_area: int = 20) -> Prediction:
    """A :class:`Prediction` of one sequence frame from its ground truth (see the module doc)."""
    masks = [m for m in frame.masks if m.sum() >= min_area]
    kernel = np.ones((5, 5), np.uint8)
    merged: list[np.ndarray] = []
    taken: set[int] = set()
    for i, m in enumerate(masks):
        if i in taken:
            continue
        cur = m.copy()
        grown = cv2.dilate(cur.astype(np.uint8), kernel).astype(bool)  # what touches cur (grown again on a merge)
        for j in range(i + 1, len(masks)):
            if j not in taken and (grown & masks[j]).any() and rng.random() < merge:
                cur |= masks[j]
                taken.add(j)
                grown = cv2.dilate(cur.astype(np.uint8), kernel).astype(bool)
        merged.append(cur)
    kept = [m for m in merged if rng.random() >= miss]
    order = rng.permutation(len(kept))  # the runtime ranks by score, not by object
    arr = np.array([kept[i] for i in order], bool).reshape(-1, *frame.depth.shape)
    boxes = masks_to_boxes(arr)
    return Prediction(arr, np.full(len(arr), 0.9, np.float32), boxes, np.ones(3, np.float32), np.arange(len(arr)),
                      instance_depth=instance_depths(arr, boxes, frame.depth))


def track_sequences(sequences: list[list[MovingFrame]], detections: list[list[Prediction]]) -> dict[str, Any]:
    """MOT metrics of the tracker on every sequence's detections, without (``masks_only``) and with
    (``with_depth``) their instance depth, summed over the sequences."""
    out: dict[str, dict[str, Any]] = {}
    for mode in ("masks_only", "with_depth"):
        per_seq = []
        for frames, preds in zip(sequences, detections):
            tracker = InstanceTracker()
            tracked = []
            for p in preds:
                depth = p.instance_depth
                p.instance_depth = depth if mode == "with_depth" else None
                ids = tracker.update(p)
                p.instance_depth, p.track_ids = depth, None
                tracked.append((ids, p.masks))
            per_seq.append(mot_metrics([(f.ids, f.masks) for f in frames], tracked))
        out[mode] = combine(per_seq)
    return out


def run_tracking_bench(opts: TrackingBenchOptions, runtime: Any = None) -> dict[str, Any]:
    """Generate the sequences, detect (simulated, or ``runtime.predict``), track with and without depth:
    ``{"detector", "masks_only", "with_depth"}`` (see :func:`track_sequences`)."""
    sequences = [make_crossing_sequence(opts.seed + s, opts.frames, opts.height, opts.width, n_pairs=opts.pairs,
                                        speed=opts.speed, depth_noise=opts.depth_noise, holes=opts.holes)
                 for s in range(opts.sequences)]
    if runtime is not None:
        detections = [[runtime.predict(f.rgb, f.depth) for f in frames] for frames in sequences]
        detector = "model"
    else:
        detections = []
        for s, frames in enumerate(sequences):
            rng = np.random.default_rng([opts.seed + s, 1])
            detections.append([simulated_detections(f, rng, opts.miss, opts.merge) for f in frames])
        detector = f"simulated (miss {opts.miss}, merge {opts.merge})"
    return {"detector": detector, **track_sequences(sequences, detections)}


if __name__ == "__main__":
    from calibnet.cli.tracking_depth import main

    raise SystemExit(main())
