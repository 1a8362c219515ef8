"""``RerunLogger``: frames and results in the Rerun viewer, as a ``.rrd`` file and/or a spawned viewer
(``rerun-sdk``; ``pip install ".[robotics]"``).

Per frame, on the timelines ``capture_time`` (the frame's stamp: the bag's or camera's clock, a video's frame
time) and ``frame`` (its index):

- ``camera/rgb``: the colour image; ``camera/depth``: the depth map (metres for robot sources);
- ``camera/instances``: a segmentation image of instance ids (:func:`~.rosmsgs.label_image`: the same labels as
  the bag's ``/calibnet/instances``; track ids with ``track=True``);
- ``camera/boxes``: boxes with their id and score as labels;
- ``depth_trust/dsa``, ``depth_trust/wsf_t3``, ``depth_trust/wsf_res2``: the Prediction's depth trust as time
  series.

Read a file back with ``rerun rrd print FILE.rrd`` or open it with ``rerun FILE.rrd``. No torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.closing import Closing
from ..core.prediction import Prediction
from .optional import require
from .rosmsgs import instance_ids, instance_labels, label_image
from .sources.files import Frame

__all__ = ["RerunLogger", "TRUST_NAMES"]

#: the entries of Prediction.depth_trust
TRUST_NAMES = ("dsa", "wsf_t3", "wsf_res2")


class RerunLogger(Closing):
    """Logs frames and their Predictions to ``path`` (an ``.rrd`` file) and/or a viewer it ``spawn`` s; see the
    module doc. ``track`` / ``min_score`` as for the bag output."""

    def __init__(self, path: str | Path | None = None, spawn: bool = False, track: bool = False,
                 min_score: float = 0.0, application_id: str = "calibnet") -> None:
        if path is None and not spawn:
            raise ValueError("give a .rrd path, spawn=True, or both")
        self.rr = rr = require("rerun", "logging to Rerun")
        self.track, self.min_score = track, min_score
        self.rec = rr.RecordingStream(application_id)
        if spawn:
            self.rec.spawn(connect=path is None)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if spawn:
                self.rec.set_sinks(rr.GrpcSink(), rr.FileSink(str(path)))
            else:
                self.rec.save(str(path))
        self.count = 0

    def log(self, frame: Frame, pred: Prediction, stamp_ns: int | None = None, index: int | None = None) -> None:
        """One frame and its Prediction (``stamp_ns`` / ``index``: for frames without their own stamp / index)."""
        rr, rec = self.rr, self.rec
        stamp = frame.stamp_ns if frame.stamp_ns is not None else stamp_ns
        if stamp is not None:
            rec.set_time("capture_time", timestamp=np.datetime64(int(stamp), "ns"))
        rec.set_time("frame", sequence=int(frame.meta.get("index", self.count if index is None else index)))
        rec.log("camera/rgb", rr.Image(frame.rgb))
        depth = np.asarray(frame.depth)
        rec.log("camera/depth", rr.DepthImage(depth, meter=1.0 if depth.dtype.kind == "f" else None))
        rec.log("camera/instances", rr.SegmentationImage(label_image(pred, self.track, self.min_score)))
        keep = pred.scores >= self.min_score
        ids = instance_ids(pred, self.track)[keep]
        rec.log("camera/boxes", rr.Boxes2D(array=pred.boxes[keep], array_format=rr.Box2DFormat.XYXY,
                                           class_ids=instance_labels(pred, self.track, self.min_score)[keep],
                                           labels=[f"#{i} {s:.2f}" for i, s in zip(ids, pred.scores[keep])]))
        for name, value in zip(TRUST_NAMES, np.asarray(pred.depth_trust, np.float64)):
            rec.log(f"depth_trust/{name}", rr.Scalars(float(value)))
        self.count += 1

    def close(self) -> None:
        """Flush and close the file / connection."""
        self.rec.flush()
        self.rec.disconnect()

