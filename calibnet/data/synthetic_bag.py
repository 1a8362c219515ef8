"""Synthetic RGB-D ROS bags (``rosbags``; ``pip install ".[robotics]"``): the scenes of
:func:`~calibnet.data.synthetic.make_scene` as a camera would record them, to try ``calibnet-infer --bag``
without a robot, and for the tests and the bag benchmark.

:func:`write_synthetic_bag` writes a rosbag2 folder (MCAP or sqlite3 storage) or a ROS 1 ``.bag`` with a colour
topic and a depth topic at their own rates, header stamps with jitter, log times a little after them, and
optionally missing depth messages. Colour: sensor_msgs/Image (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``,
``mono8``; rows padded by ``step_pad`` bytes) or CompressedImage (``jpeg``, ``png``). Depth: Image ``16UC1``
(millimetres) or ``32FC1`` (metres), or CompressedImage ``compressedDepth`` PNG (16UC1). The scenes' 8-bit
depth (near = dark) becomes metric depth 0.3 m + 15 mm per level; a corner patch has no reading (0, or NaN
for 32FC1).
"""

from __future__ import annotations

import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..runtime.apps.optional import require
from ..runtime.apps.rosmsgs import compressed_message, image_message, to_message, typestore
from .synthetic import make_scene

__all__ = ["SyntheticBag", "metric_depth_mm", "write_realsense_recording", "write_synthetic_bag"]

STORAGES = ("mcap", "sqlite3", "ros1")


@dataclass
class SyntheticBag:
    """What :func:`write_synthetic_bag` wrote: the bag, its topics and the header stamps of its messages."""

    path: Path  # the rosbag2 folder or the ROS 1 .bag file
    rgb_topic: str
    depth_topic: str
    color_stamps: list[int] = field(default_factory=list)
    depth_stamps: list[int] = field(default_factory=list)  # without the dropped ones

    @property
    def storage_file(self) -> Path:
        """The file that holds the messages (a rosbag2 folder's .mcap / .db3; the .bag itself)."""
        if self.path.is_file():
            return self.path
        return next(p for p in self.path.iterdir() if p.suffix in (".mcap", ".db3"))


def metric_depth_mm(depth_u8: np.ndarray) -> np.ndarray:
    """uint16 millimetres of a scene's 8-bit depth (near = dark): 300 mm + 15 mm per level; the top-left
    eighth of the frame has no reading (0)."""
    mm = 300 + 15 * depth_u8.astype(np.uint16)
    h, w = mm.shape
    mm[: max(1, h // 8), : max(1, w // 8)] = 0
    return mm


def _color_message(rgb: np.ndarray, color: str, stamp: int, frame_id: str, step_pad: int) -> tuple[str, dict]:
    if color in ("jpeg", "png"):
        ok, buf = cv2.imencode(f".{'jpg' if color == 'jpeg' else 'png'}", np.ascontiguousarray(rgb[:, :, ::-1]))
        assert ok
        return "sensor_msgs/msg/CompressedImage", compressed_message(buf.tobytes(), color, stamp, frame_id)
    pixels = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "mono8": rgb[:, :, 1],
              "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
              "bgra8": np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 255, np.uint8)])}[color]
    row = pixels.shape[1] * (pixels.shape[2] if pixels.ndim == 3 else 1)
    return "sensor_msgs/msg/Image", image_message(pixels, color, stamp, frame_id, row + step_pad)


def _depth_message(mm: np.ndarray, depth: str, stamp: int, frame_id: str) -> tuple[str, dict]:
    if depth == "16UC1":
        return "sensor_msgs/msg/Image", image_message(mm, "16UC1", stamp, frame_id)
    if depth == "32FC1":
        metres = np.where(mm > 0, mm.astype(np.float32) / 1000, np.float32(np.nan)).astype(np.float32)
        return "sensor_msgs/msg/Image", image_message(metres, "32FC1", stamp, frame_id)
    if depth == "compressedDepth":
        ok, png = cv2.imencode(".png", mm)
        assert ok
        data = struct.pack("<iff", 0, 0.0, 0.0) + png.tobytes()  # compressed_depth_image_transport header
        return "sensor_msgs/msg/CompressedImage", compressed_message(data, "16UC1; compressedDepth png", stamp,
                                                                     frame_id)
    raise ValueError(f"depth must be 16UC1, 32FC1 or compressedDepth, got {depth!r}")


def write_synthetic_bag(path: str | Path, n_color: int = 10, hw: tuple[int, int] = (48, 64), storage: str = "mcap",
                        color: str = "rgb8", depth: str = "16UC1", color_hz: float = 30.0, depth_hz: float = 15.0,
                        jitter_ms: float = 0.0, drop_depth: tuple[int, ...] = (), step_pad: int = 0, seed: int = 0,
                        start_ns: int = 1_700_000_000_000_000_000, rgb_topic: str = "/camera/color/image_raw",
                        depth_topic: str = "/camera/depth/image_rect_raw",
                        frame_id: str = "camera_color_optical_frame", extra_topics: dict[str, str] | None = None,
                        unstamped: bool = False) -> SyntheticBag:
    """Write a synthetic RGB-D bag (see the module doc) to ``path`` (a rosbag2 folder, or a ``.bag`` file with
    ``storage="ros1"``; replaced if it exists). ``drop_depth``: indices of depth messages left out;
    ``extra_topics``: more topics {name: colour encoding} carrying the same colour images (an ambiguous bag);
    ``unstamped``: headers without a stamp (0), as some drivers leave them (the stamps returned are still the
    capture times; the log times are 2 ms (colour) and 3 ms (depth) after them)."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    duration = n_color / color_hz
    n_depth = int(np.ceil(duration * depth_hz)) if depth_hz else 0
    jitter = int(jitter_ms * 1e6)

    def stamps(n: int, hz: float) -> list[int]:
        return [start_ns + int(round(i * 1e9 / hz)) + (int(rng.integers(-jitter, jitter + 1)) if jitter else 0)
                for i in range(n)]

    color_ns, depth_ns = stamps(n_color, color_hz), stamps(n_depth, depth_hz)
    scenes = [make_scene(seed + j, *hw) for j in range(max(n_depth, 1))]
    messages: list[tuple[int, str, str, dict]] = []  # (log time, topic, type, message dict)
    for i, t in enumerate(color_ns):
        j = min(int(round(i * depth_hz / color_hz)), len(scenes) - 1)  # the scene seen at that time
        for topic, enc in {rgb_topic: color, **(extra_topics or {})}.items():
            msgtype, msg = _color_message(scenes[j].rgb, enc, 0 if unstamped else t, frame_id, step_pad)
            messages.append((t + 2_000_000, topic, msgtype, msg))
    for j, t in enumerate(depth_ns):
        if j not in drop_depth:
            msgtype, msg = _depth_message(metric_depth_mm(scenes[j].depth), depth, 0 if unstamped else t, frame_id)
            messages.append((t + 3_000_000, depth_topic, msgtype, msg))
    messages.sort(key=lambda m: m[0])
    _write(path, storage, messages)
    return SyntheticBag(path, rgb_topic, depth_topic, color_ns,
                        [t for j, t in enumerate(depth_ns) if j not in drop_depth])


def _write(path: Path, storage: str, messages: list[tuple[int, str, str, dict]]) -> None:
    ros1 = storage == "ros1"
    store = typestore(ros1=ros1)
    if ros1:
        writer: Any = require("rosbags.rosbag1", "writing ROS bags").Writer(path)
    else:
        rosbag2 = require("rosbags.rosbag2", "writing ROS bags")
        plugin = rosbag2.StoragePlugin.MCAP if storage == "mcap" else rosbag2.StoragePlugin.SQLITE3
        writer = rosbag2.Writer(path, version=9, storage_plugin=plugin)
    conns: dict[str, Any] = {}
    with writer:
        for log_ns, topic, msgtype, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            obj = to_message(store, msgtype, msg)
            raw = store.serialize_ros1(obj, msgtype) if ros1 else store.serialize_cdr(obj, msgtype)
            writer.write(conns[topic], log_ns, raw)


def write_realsense_recording(path: str | Path, n: int = 5, hw: tuple[int, int] = (48, 64), fps: int = 30,
                              seed: int = 0, depth_units: float = 0.001) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Record ``n`` synthetic scenes as a RealSense recording without a camera (``pyrealsense2``: a software
    device with a colour (rgb8) and a depth (z16) sensor, identity extrinsics and equal intrinsics, and the SDK's
    recorder, which writes a rosbag2 sqlite3 ``.db3``). Returns (rgb, z16 depth, timestamp ns) per frame."""
    rs = require("pyrealsense2", "writing a RealSense recording")
    path = Path(path)
    path.unlink(missing_ok=True)
    h, w = hw
    dev = rs.software_device()
    sensors = {"depth": dev.add_sensor("Depth"), "color": dev.add_sensor("Color")}
    intr = rs.intrinsics()
    intr.width, intr.height, intr.ppx, intr.ppy, intr.fx, intr.fy = w, h, w / 2, h / 2, float(w), float(w)
    intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
    profiles = {}
    for name, (kind, fmt, bpp, uid) in {"depth": (rs.stream.depth, rs.format.z16, 2, 0),
                                        "color": (rs.stream.color, rs.format.rgb8, 3, 1)}.items():
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = kind, 0, uid, w, h, fps, bpp, fmt
        vs.intrinsics = intr
        profiles[name] = sensors[name].add_video_stream(vs).as_video_stream_profile()
    sensors["depth"].add_read_only_option(rs.option.depth_units, depth_units)
    identity = rs.extrinsics()
    identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
    profiles["depth"].register_extrinsics_to(profiles["color"], identity)
    dev.create_matcher(rs.matchers.dlr_c)
    recorder = rs.recorder(str(path), dev)
    for name, sensor in sensors.items():
        sensor.open(profiles[name])
        sensor.start(lambda f: None)
    frames = []
    for i in range(n):
        scene = make_scene(seed + i, h, w)
        rgb, z16 = scene.rgb, metric_depth_mm(scene.depth)
        ms = 1000.0 + i * 1000.0 / fps
        for name, pixels in (("depth", z16), ("color", rgb)):
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = pixels, pixels.itemsize * (3 if pixels.ndim == 3 else 1), pixels.strides[0]
            f.timestamp, f.domain, f.frame_number, f.profile = ms, rs.timestamp_domain.hardware_clock, i, profiles[name]
            if name == "depth":
                f.depth_units = depth_units
            sensors[name].on_video_frame(f)
        time.sleep(0.02)  # the recorder takes frames from a queue: let it keep up (nothing is dropped then)
        frames.append((rgb, z16, int(round(ms * 1e6))))
    for sensor in sensors.values():
        sensor.stop()
        sensor.close()
    del recorder  # the recording is written when the recorder goes away
    return frames
