"""Robot data out: Predictions as ROS message dicts (rosmsgs), the MCAP written by BagWriter read back with rosbags,
and the Rerun file read back with rerun's own reader (``rerun rrd print``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the robotics extra (pip install '.[robotics]') is not installed")

from rosbags.highlevel import AnyReader  # noqa: E402

from calibnet.runtime.apps.bagwriter import BagWriter  # noqa: E402
from calibnet.runtime.apps.rosmsgs import (  # noqa: E402
    DETECTIONS_TOPIC,
    INSTANCES_TOPIC,
    OVERLAY_TOPIC,
    label_image,
    prediction_messages,
)
from calibnet.runtime.apps.sources import Frame  # noqa: E402
from calibnet.runtime.apps.sources.rosimage import decode_color, decode_depth, stamp_ns  # noqa: E402
from calibnet.runtime.core.limits import InputLimits  # noqa: E402
from calibnet.runtime.core.postprocess import masks_to_boxes  # noqa: E402
from calibnet.runtime.core.prediction import Prediction  # noqa: E402

T0 = 1_700_000_000_123_456_789
NO_LIMITS = InputLimits(0, 0)


def prediction(seed: int, hw=(30, 40), k=4, tracked=False) -> Prediction:
    """K overlapping rectangles, scores descending (as the runtime sorts them)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((k, *hw), bool)
    for i in range(k):
        y, x = rng.integers(0, hw[0] - 8), rng.integers(0, hw[1] - 8)
        masks[i, y:y + rng.integers(4, 12), x:x + rng.integers(4, 16)] = True
    scores = np.sort(rng.random(k).astype(np.float32))[::-1]
    p = Prediction(masks, scores, masks_to_boxes(masks), rng.random(3).astype(np.float32), np.arange(k))
    if tracked:
        p.track_ids = np.array([7, -1, 70_000, 3][:k], np.int64)
    return p


def frame(i: int, hw=(30, 40)) -> Frame:
    rng = np.random.default_rng(100 + i)
    rgb = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    depth = rng.random(hw).astype(np.float32) * 3
    return Frame(f"f{i}", f"{i:06d}", rgb, depth, "", T0 + i * 33_333_333, T0 + (i // 2) * 66_666_666,
                 {"index": i, "frame_id": "cam_optical", "rgb_topic": "/in/color", "depth_topic": "/in/depth"})


def painted(masks: np.ndarray, labels: list[int]) -> np.ndarray:
    """The label image rule written out: the highest-scoring instance (the first) on top."""
    out = np.zeros(masks.shape[1:], np.uint16)
    for m, v in reversed(list(zip(masks, labels))):
        if v:
            out[m] = v
    return out


def test_label_image_and_detections_follow_results_order():
    p = prediction(0)
    assert np.array_equal(label_image(p), painted(p.masks, [1, 2, 3, 4]))
    assert np.array_equal(label_image(p, min_score=float(p.scores[1])), painted(p.masks, [1, 2, 0, 0]))
    t = prediction(0, tracked=True)
    assert np.array_equal(label_image(t, track=True), painted(t.masks, [7, 0, 70_000 - 65_535, 3]))
    msgs = prediction_messages(t, T0, "cam", track=True)
    dets = msgs[DETECTIONS_TOPIC]["detections"]
    assert [d["id"] for d in dets] == ["7", "-1", "70000", "3"]
    x0, y0, x1, y1 = t.boxes[0]
    assert dets[0]["bbox"] == {"center": {"position": {"x": (x0 + x1) / 2, "y": (y0 + y1) / 2}},
                               "size_x": x1 - x0, "size_y": y1 - y0}
    assert msgs[INSTANCES_TOPIC]["encoding"] == "mono16" and msgs[INSTANCES_TOPIC]["header"]["stamp"] == {
        "sec": T0 // 10**9, "nanosec": T0 % 10**9}
    with pytest.raises(ValueError, match="track_ids"):
        label_image(prediction(0), track=True)


def test_the_written_mcap_reads_back_with_rosbags(tmp_path):
    out = tmp_path / "out" / "results.mcap"
    frames, preds = [frame(i) for i in range(4)], [prediction(i) for i in range(4)]
    with BagWriter(out, copy_inputs=True, min_score=0.2) as w:
        for f, p in zip(frames, preds):
            w.write(f, p, overlay=f.rgb)
    assert out.is_file() and not list(out.parent.glob(".*tmp*"))  # moved into place, nothing left beside it
    with AnyReader([out]) as r:
        types = {t: i.msgtype for t, i in r.topics.items()}
        assert types == {INSTANCES_TOPIC: "sensor_msgs/msg/Image", DETECTIONS_TOPIC: "vision_msgs/msg/Detection2DArray",
                         OVERLAY_TOPIC: "sensor_msgs/msg/CompressedImage", "/in/color": "sensor_msgs/msg/Image",
                         "/in/depth": "sensor_msgs/msg/Image"}
        got: dict[str, list] = {t: [] for t in types}
        for conn, log_ns, raw in r.messages():
            msg = r.deserialize(raw, conn.msgtype)
            assert stamp_ns(msg.header) == log_ns and msg.header.frame_id == "cam_optical"
            got[conn.topic].append(msg)
    assert [stamp_ns(m.header) for m in got[INSTANCES_TOPIC]] == [f.stamp_ns for f in frames]
    assert [stamp_ns(m.header) for m in got["/in/depth"]] == [T0, T0 + 66_666_666]  # each depth message once
    for f, p, lab, det, ov, col in zip(frames, preds, got[INSTANCES_TOPIC], got[DETECTIONS_TOPIC],
                                       got[OVERLAY_TOPIC], got["/in/color"]):
        kept = int((p.scores >= 0.2).sum())
        labels = np.frombuffer(lab.data, "<u2").reshape(lab.height, lab.width)
        assert lab.encoding == "mono16" and np.array_equal(labels, painted(p.masks, [*range(1, kept + 1)] + [0] * (
            len(p) - kept)))
        assert len(det.detections) == kept
        for k, d in enumerate(det.detections):
            assert d.id == str(k + 1) and d.results[0].hypothesis.score == float(p.scores[k])
            x0, y0, x1, y1 = p.boxes[k]
            assert (d.bbox.center.position.x, d.bbox.size_x) == ((x0 + x1) / 2, x1 - x0)
        assert ov.format == "jpeg" and decode_color(ov, NO_LIMITS).shape == f.rgb.shape
        assert np.array_equal(decode_color(col, NO_LIMITS), f.rgb)
    assert np.array_equal(decode_depth(got["/in/depth"][0], NO_LIMITS), frames[0].depth)
    with pytest.raises(ValueError, match=r"\.mcap"):
        BagWriter(tmp_path / "out.bag")


ENTITIES = ("/camera/rgb", "/camera/depth", "/camera/instances", "/camera/boxes", "/depth_trust/dsa",
            "/depth_trust/wsf_t3", "/depth_trust/wsf_res2")


def rrd_print(path: Path, tmp_path: Path, *args: str) -> str:
    """``rerun rrd print`` without analytics or config files (CI=1, XDG dirs in tmp_path)."""
    exe = str(Path(sys.executable).parent / "rerun")
    if not Path(exe).is_file():
        exe = shutil.which("rerun") or pytest.skip("the rerun command (rerun-sdk) is not on PATH")
    env = {**os.environ, "CI": "1", "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    res = subprocess.run([exe, "rrd", "print", *args, str(path)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_rerun_file_lists_every_entity_on_the_capture_timeline(tmp_path):
    pytest.importorskip("rerun", reason="rerun-sdk (calibnet[robotics]) is not installed")
    from calibnet.runtime.apps.rerunlog import RerunLogger

    path = tmp_path / "run.rrd"
    preds = [prediction(i, tracked=True) for i in range(3)]
    with RerunLogger(path, track=True) as log:
        for i, p in enumerate(preds):
            log.log(frame(i), p)
    rows: dict[str, int] = {}
    for line in rrd_print(path, tmp_path).splitlines():  # "Chunk(...) with N rows (...) - /entity - data columns"
        if m := re.match(r"Chunk\(\S+\) with (\d+) rows .* - (\S+) - ", line):
            rows[m[2]] = rows.get(m[2], 0) + int(m[1])
    assert {e: rows.get(e) for e in ENTITIES} == dict.fromkeys(ENTITIES, 3)
    table = rrd_print(path, tmp_path, "-vvv")
    assert "capture_time" in table and "2023-11-14T22:13:20.123" in table  # T0 on the capture_time timeline
    for p in preds:
        assert f"[{float(p.depth_trust[0])}]" in table
