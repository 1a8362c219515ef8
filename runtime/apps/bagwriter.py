"""``BagWriter``: calibnet's results as a rosbag2 MCAP file that Foxglove (and ``ros2 bag play``, and rosbags)
opens as it is, written with ``rosbags`` (``pip install ".[robotics]"``).

One message per processed colour frame on each topic of :mod:`.rosmsgs` (``/calibnet/instances``,
``/calibnet/detections``, ``/calibnet/overlay``), with the frame's header stamp (also the log time) and
frame_id; the vision_msgs definitions travel in the file. ``copy_inputs=True`` also writes the frames that were
processed, as decoded, on the input topics (colour ``rgb8``; depth ``32FC1`` metres for robot sources, each
depth message once). The file is written beside its target and moved into place by :meth:`BagWriter.close`, so
a reader never sees half a file. No torch.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..core.closing import Closing
from ..core.prediction import Prediction
from .optional import require
from .rosmsgs import OVERLAY_TOPIC, TOPIC_TYPES, image_message, jpeg_message, prediction_messages, to_message, typestore
from .sources.files import Frame

__all__ = ["BagWriter", "COLOR_TOPIC", "DEPTH_TOPIC"]

#: input topics of frames whose source has none (folders, videos, RealSense)
COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/depth/image_raw"
_DEPTH_ENCODING = {np.dtype(np.float32): "32FC1", np.dtype(np.uint16): "16UC1", np.dtype(np.uint8): "mono8"}


class BagWriter(Closing):
    """Writes a rosbag2 MCAP file ``path`` (``.mcap``); see the module doc. ``track``: label instances by
    track id; ``min_score``: leave out instances below it (as results.json does); ``copy_inputs``: also the
    input frames. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, copy_inputs: bool = False, track: bool = False,
                 min_score: float = 0.0) -> None:
        self.path = Path(path)
        if self.path.suffix != ".mcap":
            raise ValueError(f"bag output {self.path}: give a file name ending in .mcap")
        rosbag2 = require("rosbags.rosbag2", "writing ROS bags")
        self.copy_inputs, self.track, self.min_score = copy_inputs, track, min_score
        self.store = typestore()
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        shutil.rmtree(self._tmp, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = rosbag2.Writer(self._tmp, version=9, storage_plugin=rosbag2.StoragePlugin.MCAP)
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self._last_depth: dict[str, int] = {}
        self.count = 0

    def _write(self, topic: str, msgtype: str, message: dict[str, Any], stamp_ns: int) -> None:
        conn = self._conns.get(topic)
        if conn is None:
            conn = self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        self._writer.write(conn, stamp_ns, self.store.serialize_cdr(to_message(self.store, msgtype, message), msgtype))

    def write(self, frame: Frame, pred: Prediction, overlay: np.ndarray | None = None,
              stamp_ns: int | None = None) -> None:
        """The messages of one processed frame: ``pred``'s label image and detections, the ``overlay`` (uint8
        RGB) when given, the input frame with ``copy_inputs``. ``stamp_ns``: for frames without a stamp of their
        own (``frame.stamp_ns`` None: folders, videos)."""
        stamp = frame.stamp_ns if frame.stamp_ns is not None else stamp_ns
        if stamp is None:
            raise ValueError(f"frame {frame.name} has no stamp: pass stamp_ns")
        frame_id = str(frame.meta.get("frame_id", "camera"))
        for topic, message in prediction_messages(pred, stamp, frame_id, self.track, self.min_score).items():
            self._write(topic, TOPIC_TYPES[topic], message, stamp)
        if overlay is not None:
            self._write(OVERLAY_TOPIC, TOPIC_TYPES[OVERLAY_TOPIC], jpeg_message(overlay, stamp, frame_id), stamp)
        if self.copy_inputs:
            self._copy(frame, stamp, frame_id)
        self.count += 1

    def _copy(self, frame: Frame, stamp: int, frame_id: str) -> None:
        color_topic = str(frame.meta.get("rgb_topic", COLOR_TOPIC))
        depth_topic = str(frame.meta.get("depth_topic", DEPTH_TOPIC))
        self._write(color_topic, "sensor_msgs/msg/Image", image_message(frame.rgb, "rgb8", stamp, frame_id), stamp)
        d_stamp = frame.depth_stamp_ns if frame.depth_stamp_ns is not None else stamp
        encoding = _DEPTH_ENCODING.get(frame.depth.dtype)
        if self._last_depth.get(depth_topic) != d_stamp and encoding is not None and frame.depth.ndim == 2:
            self._write(depth_topic, "sensor_msgs/msg/Image", image_message(frame.depth, encoding, d_stamp, frame_id),
                        d_stamp)
            self._last_depth[depth_topic] = d_stamp

    def close(self) -> None:
        """Finish the file and move it into place (idempotent)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        os.replace(self._tmp / f"{self._tmp.name}.mcap", self.path)
        shutil.rmtree(self._tmp, ignore_errors=True)
