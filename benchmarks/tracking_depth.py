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

The same detections go through a fresh tracker twice, in one run: without their depth (masks only: what the
tracker did before depth) and with it. Metrics (:mod:`calibnet.evaluation.mot`, mask IoU >= 0.5): IDF1,
ID switches, MOTA, summed over the sequences. Prints a table and one JSON line (``--json-out``: also a
file). No timing: the figures depend on the seed only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["main", "simulated_detections", "track_sequences"]


def simulated_detections(frame: Any, rng: np.random.Generator, miss: float, merge: float,
                         min_area: int = 20) -> Any:
    """A :class:`Prediction` of one sequence frame from its ground truth (see the module doc)."""
    from calibnet.runtime.core.postprocess import instance_depths
    from calibnet.runtime.core.prediction import Prediction, masks_to_boxes

    masks = [m for m in frame.masks if m.sum() >= min_area]
    kernel = np.ones((5, 5), np.uint8)
    merged: list[np.ndarray] = []
    taken: set[int] = set()
    for i, m in enumerate(masks):
        if i in taken:
            continue
        cur = m.copy()
        for j in range(i + 1, len(masks)):
            touching = (cv2.dilate(cur.astype(np.uint8), kernel).astype(bool) & masks[j]).any()
            if j not in taken and touching and rng.random() < merge:
                cur |= masks[j]
                taken.add(j)
        merged.append(cur)
    kept = [m for m in merged if rng.random() >= miss]
    order = rng.permutation(len(kept))  # the runtime ranks by score, not by object
    arr = np.array([kept[i] for i in order], bool).reshape(-1, *frame.depth.shape)
    boxes = masks_to_boxes(arr)
    return Prediction(arr, np.full(len(arr), 0.9, np.float32), boxes, np.ones(3, np.float32), np.arange(len(arr)),
                      instance_depth=instance_depths(arr, boxes, frame.depth))


def track_sequences(sequences: list[list[Any]], detections: list[list[Any]]) -> dict[str, dict[str, Any]]:
    """MOT metrics of the tracker on every sequence's detections, without (``masks_only``) and with
    (``with_depth``) their instance depth, summed over the sequences."""
    from calibnet.evaluation.mot import combine, mot_metrics
    from calibnet.runtime.apps.tracking import InstanceTracker

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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module doc)."""
    p = argparse.ArgumentParser(prog="python -m calibnet.benchmarks.tracking_depth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=20, help="sequences (seeds 0..N-1 after --seed; default 20)")
    p.add_argument("--seed", type=int, default=0, help="first sequence seed (default 0)")
    p.add_argument("--frames", type=int, default=40, help="frames per sequence (default 40)")
    p.add_argument("--height", type=int, default=240, help="frame height (default 240)")
    p.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    p.add_argument("--pairs", type=int, default=2, help="crossing pairs per sequence (default 2)")
    p.add_argument("--speed", type=float, default=3.0, help="px per frame of each object (default 3)")
    p.add_argument("--depth-noise", type=float, default=3.0, help="depth noise sigma, 8-bit levels (default 3)")
    p.add_argument("--holes", type=float, default=0.02, help="share of depth pixels without reading (default 0.02)")
    p.add_argument("--miss", type=float, default=0.1, help="simulated detector: drop probability (default 0.1)")
    p.add_argument("--merge", type=float, default=0.5,
                   help="simulated detector: probability that two touching objects are one detection (default 0.5)")
    p.add_argument("--model", help="use this model's predictions instead (any file calibnet.runtime opens)")
    p.add_argument("--json-out", help="also write the JSON line to this file")
    a = p.parse_args(argv)
    from calibnet.data.sequences import make_crossing_sequence

    sequences = [make_crossing_sequence(a.seed + s, a.frames, a.height, a.width, n_pairs=a.pairs, speed=a.speed,
                                        depth_noise=a.depth_noise, holes=a.holes) for s in range(a.sequences)]
    if a.model:
        from calibnet.runtime import Runtime

        with Runtime.open(a.model) as rt:
            detections = [[rt.predict(f.rgb, f.depth) for f in frames] for frames in sequences]
        detector = f"model {a.model}"
    else:
        detections = []
        for s, frames in enumerate(sequences):
            rng = np.random.default_rng([a.seed + s, 1])
            detections.append([simulated_detections(f, rng, a.miss, a.merge) for f in frames])
        detector = f"simulated (miss {a.miss}, merge {a.merge})"
    res = track_sequences(sequences, detections)
    print(f"{a.sequences} crossing sequences x {a.frames} frames ({a.height}x{a.width}, {a.pairs} pairs, depth noise "
          f"{a.depth_noise}, holes {a.holes}); detector: {detector}")
    print(f"{'tracker':<12} {'IDF1':>6} {'IDsw':>5} {'MOTA':>6} {'IDP':>6} {'IDR':>6}")
    for mode, m in res.items():
        print(f"{mode:<12} {100 * m['IDF1']:6.1f} {m['ID_switches']:5d} {100 * m['MOTA']:6.1f} "
              f"{100 * m['IDP']:6.1f} {100 * m['IDR']:6.1f}")
    line = json.dumps({"args": vars(a), "detector": detector, **res})
    print(line)
    if a.json_out:
        Path(a.json_out).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
