"""A :class:`~calibnet.runtime.core.prediction.Prediction` as ROS messages: the one function the bag writer and a
ROS 2 node share (frame in -> Prediction -> :func:`prediction_messages` -> publish).

Messages are plain dicts with the fields of the ROS 2 message (nested dicts for nested messages; a field left
out is zero / empty), so this module needs no ROS package; :func:`to_message` turns one into the message object
of a ``rosbags`` typestore (:func:`typestore` has vision_msgs registered), and an rclpy node fills its
messages from the same dicts.

- ``/calibnet/instances``: sensor_msgs/Image ``mono16`` at the colour frame's size (:func:`label_image`):
  0 = background, k = the k-th instance in results order (scores descending; where instances overlap the
  higher-scoring one is on top), or with ``track=True`` its track id (IDs beyond 65535 wrap to 1..65535;
  instances without a track id are left out).
- ``/calibnet/detections``: vision_msgs/Detection2DArray (vision_msgs 4.x, ROS 2 Humble and later): one
  Detection2D per instance in results order: the box (centre and size, pixels, from the mask), one hypothesis
  (``class_id`` "salient", the score) and ``id``: the instance's id (:func:`instance_ids`: its rank, or its
  track id with ``track=True``, "-1" when it has none), which is its value in the label image.
- ``/calibnet/overlay``: sensor_msgs/CompressedImage ``jpeg`` of the overlay (:func:`compressed_message`).

All carry the colour frame's header stamp and frame_id. No torch; ``rosbags`` only in :func:`typestore` and
:func:`to_message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from ..core.prediction import Prediction
from .optional import require

__all__ = ["DETECTIONS_TOPIC", "INSTANCES_TOPIC", "OVERLAY_TOPIC", "TOPIC_TYPES", "VISION_MSGS",
           "compressed_message", "detections_message", "header", "image_message", "instance_ids", "instance_labels",
           "jpeg_message", "label_image",
           "prediction_messages", "to_message", "typestore"]

INSTANCES_TOPIC = "/calibnet/instances"
DETECTIONS_TOPIC = "/calibnet/detections"
OVERLAY_TOPIC = "/calibnet/overlay"
TOPIC_TYPES = {INSTANCES_TOPIC: "sensor_msgs/msg/Image", DETECTIONS_TOPIC: "vision_msgs/msg/Detection2DArray",
               OVERLAY_TOPIC: "sensor_msgs/msg/CompressedImage"}
CLASS_ID = "salient"

#: vision_msgs 4.x message definitions (the fields calibnet writes and their parts), registered in the typestore
VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": ("vision_msgs/ObjectHypothesis hypothesis\n"
                                                 "geometry_msgs/PoseWithCovariance pose\n"),
    "vision_msgs/msg/Detection2D": ("std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                    "vision_msgs/BoundingBox2D bbox\nstring id\n"),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


def header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """std_msgs/Header dict."""
    return {"stamp": {"sec": int(stamp_ns) // 1_000_000_000, "nanosec": int(stamp_ns) % 1_000_000_000},
            "frame_id": str(frame_id)}


def image_message(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str,
                  step: int | None = None) -> dict[str, Any]:
    """sensor_msgs/Image dict of [H,W] or [H,W,C] pixels (little-endian); ``step``: a row stride larger than the
    row (padded rows), default the row itself."""
    a = np.ascontiguousarray(pixels)
    h, w = a.shape[:2]
    row = a.strides[0]
    data = a.view(np.uint8).reshape(h, row)
    if step is not None and step != row:
        if step < row:
            raise ValueError(f"step {step} is smaller than a row ({row} bytes)")
        data = np.concatenate([data, np.zeros((h, step - row), np.uint8)], axis=1)
    return {"header": header(stamp_ns, frame_id), "height": h, "width": w, "encoding": encoding,
            "is_bigendian": 0, "step": step or row, "data": data.reshape(-1)}


def compressed_message(data: bytes, fmt: str, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """sensor_msgs/CompressedImage dict."""
    return {"header": header(stamp_ns, frame_id), "format": fmt, "data": np.frombuffer(data, np.uint8)}


def jpeg_message(rgb: np.ndarray, stamp_ns: int, frame_id: str, quality: int = 90) -> dict[str, Any]:
    """CompressedImage dict (``jpeg``) of a uint8 RGB image."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return compressed_message(buf.tobytes(), "jpeg", stamp_ns, frame_id)


def instance_ids(pred: Prediction, track: bool = False) -> np.ndarray:
    """int64 [K]: each instance's id, its rank in results order (1, 2, ...) or with ``track=True`` its track id
    (-1: none)."""
    if not track:
        return np.arange(1, len(pred) + 1, dtype=np.int64)
    if pred.track_ids is None:
        raise ValueError("track=True needs a tracked Prediction (track_ids)")
    return np.asarray(pred.track_ids, np.int64)


def instance_labels(pred: Prediction, track: bool = False, min_score: float = 0.0) -> np.ndarray:
    """int64 [K]: each instance's value in the label image: its id (track ids beyond 65535 wrap to 1..65535),
    0 for one left out (below ``min_score``, or without a track id)."""
    ids = instance_ids(pred, track)
    return np.where((pred.scores >= min_score) & (ids > 0), (ids - 1) % 65535 + 1, 0)


def label_image(pred: Prediction, track: bool = False, min_score: float = 0.0) -> np.ndarray:
    """uint16 [H,W] instance label image of ``pred`` (see the module doc); instances below ``min_score`` are left
    out, as they are from results.json."""
    out = np.zeros(pred.image_hw, np.uint16)
    for mask, label in zip(pred.masks[::-1], instance_labels(pred, track, min_score)[::-1]):  # the best on top
        if label:
            out[mask] = label
    return out


def detections_message(pred: Prediction, stamp_ns: int, frame_id: str, track: bool = False,
                       min_score: float = 0.0) -> dict[str, Any]:
    """vision_msgs/Detection2DArray dict of ``pred`` (see the module doc)."""
    hdr = header(stamp_ns, frame_id)
    ids = instance_ids(pred, track)
    dets = []
    for k in np.nonzero(pred.scores >= min_score)[0]:
        x0, y0, x1, y1 = (float(v) for v in pred.boxes[k])
        dets.append({"header": hdr,
                     "results": [{"hypothesis": {"class_id": CLASS_ID, "score": float(pred.scores[k])}}],
                     "bbox": {"center": {"position": {"x": (x0 + x1) / 2, "y": (y0 + y1) / 2}},
                              "size_x": x1 - x0, "size_y": y1 - y0},
                     "id": str(int(ids[k]))})
    return {"header": hdr, "detections": dets}


def prediction_messages(pred: Prediction, stamp_ns: int, frame_id: str, track: bool = False,
                        min_score: float = 0.0) -> dict[str, dict[str, Any]]:
    """``{topic: message dict}`` of one frame's Prediction: the label image and the detections (see the module
    doc); what a bag writer writes and a ROS 2 node publishes."""
    return {INSTANCES_TOPIC: image_message(label_image(pred, track, min_score), "mono16", stamp_ns, frame_id),
            DETECTIONS_TOPIC: detections_message(pred, stamp_ns, frame_id, track, min_score)}


def typestore(ros1: bool = False) -> Any:
    """A rosbags typestore (ROS 2 Humble, or ROS 1 Noetic) with :data:`VISION_MSGS` registered."""
    typesys = require("rosbags.typesys", "writing ROS messages")
    store = typesys.get_typestore(typesys.Stores.ROS1_NOETIC if ros1 else typesys.Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name, text in VISION_MSGS.items():
        types.update(typesys.get_types_from_msg(text, name))
    store.register(types)
    return store


def _value(store: Any, node: int, spec: Any, value: Any) -> Any:
    nodetype = require("rosbags.interfaces", "writing ROS messages").Nodetype
    if node == nodetype.NAME:
        return to_message(store, spec, value or {})
    if node == nodetype.BASE:
        return value if value is not None else "" if spec[0] == "string" else False if spec[0] == "bool" else 0
    (sub_node, sub_spec), length = spec
    n = length if node == nodetype.ARRAY else 0
    if sub_node == nodetype.BASE and sub_spec[0] != "string":
        dtype = np.bool_ if sub_spec[0] == "bool" else np.uint8 if sub_spec[0] in ("byte", "char") else sub_spec[0]
        return np.asarray(value if value is not None else np.zeros(n), dtype=dtype)
    items = list(value) if value is not None else [None] * n
    return [_value(store, sub_node, sub_spec, v) for v in items]


def to_message(store: Any, msgtype: str, value: Mapping[str, Any]) -> Any:
    """The ``msgtype`` message object of ``store`` (a rosbags typestore) from a message dict; fields left out
    are zero / empty. A field the type does not have is a ValueError."""
    _, fields = store.fielddefs[msgtype]
    names = {name for name, _ in fields}
    if unknown := set(value) - names:
        raise ValueError(f"{msgtype} has no field {', '.join(sorted(unknown))}")
    return store.types[msgtype](**{name: _value(store, node, spec, value.get(name)) for name, (node, spec) in fields})
