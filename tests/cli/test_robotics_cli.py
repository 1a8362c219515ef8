"""calibnet-infer on robot data: --bag (rosbag2 MCAP / sqlite3, ROS 1), --realsense --realsense-bag, the
outputs --bag-out (read back with rosbags) and --rerun (read back with ``rerun rrd print``), --stream/--track/
--resume, and one-line errors for ambiguous and damaged bags. Results are compared with Runtime.predict on the
arrays the sources decode, with the source's depth format."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the robotics extra (pip install '.[robotics]') is not installed")

from pycocotools import mask as mask_utils  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402

from calibnet.cli.infer import main  # noqa: E402
from calibnet.data.synthetic_bag import write_synthetic_bag  # noqa: E402
from calibnet.runtime import BagSource, Runtime  # noqa: E402
from calibnet.runtime.apps.rosmsgs import DETECTIONS_TOPIC, INSTANCES_TOPIC, OVERLAY_TOPIC  # noqa: E402
from calibnet.runtime.apps.sources import Frame  # noqa: E402
from calibnet.runtime.apps.sources.rosimage import stamp_ns  # noqa: E402
from calibnet.runtime.core.postprocess import masks_to_boxes  # noqa: E402

HW = (40, 56)


def infer(model, out, *extra):
    return main([str(model), "--out", str(out), "--threads", "1", *extra])


def read(out, name):
    return json.loads((out / name).read_text())


def decoded(results, image_id, hw):
    """bool [K,H,W] masks and scores of one image's results, in results order."""
    rs = [r for r in results if r["image_id"] == image_id]
    masks = np.array([mask_utils.decode(r["segmentation"]).astype(bool) for r in rs]).reshape(len(rs), *hw)
    return masks, np.array([r["score"] for r in rs])


def expected(model, frames, fmt):
    with Runtime.open(model, threads=1) as rt, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [rt.predict(f.rgb, f.depth, depth_format=fmt) for f in frames]


def painted(masks, labels):
    out = np.zeros(masks.shape[1:], np.uint16)
    for m, v in reversed(list(zip(masks, labels))):
        out[m] = v
    return out


def messages(path):
    got: dict[str, list] = {}
    with AnyReader([path]) as r:
        for conn, log_ns, raw in r.messages():
            msg = r.deserialize(raw, conn.msgtype)
            assert stamp_ns(msg.header) == log_ns
            got.setdefault(conn.topic, []).append(msg)
    return got


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """30 Hz colour, 15 Hz depth with 3 ms jitter and one depth message missing: 10 colour frames."""
    return write_synthetic_bag(tmp_path_factory.mktemp("bag") / "rec", n_color=10, hw=HW, jitter_ms=3,
                               drop_depth=(2,), step_pad=4, seed=7)


def test_bag_run_equals_predict_and_writes_foxglove_and_rerun_files(small_onnx, bag, tmp_path):
    out = tmp_path / "out"
    code = infer(small_onnx, out, "--bag", str(bag.path), "--bag-out", str(out / "results.mcap"),
                 "--rerun", str(out / "run.rrd"))
    assert code == 1  # the colour frames next to the missing depth message are unpaired
    src = BagSource(bag.path)
    plan = {f.index: f for f in src.frames}
    frames = [f for f in src if isinstance(f, Frame)]
    preds = expected(small_onnx, frames, src.depth_format)
    results, images, errors = read(out, "results.json"), read(out, "images.json"), read(out, "errors.json")
    assert [im["id"] for im in images] == [f.meta["index"] + 1 for f in frames]
    assert [(im["stamp_ns"], im["depth_stamp_ns"]) for im in images] == [(f.stamp_ns, f.depth_stamp_ns)
                                                                         for f in frames]
    assert {e["image_id"] for e in errors} == {i + 1 for i, f in plan.items() if f.depth_stamp_ns < 0} != set()
    assert all("no depth message within" in e["reason"] for e in errors)
    for im, p in zip(images, preds):
        masks, scores = decoded(results, im["id"], HW)
        assert np.array_equal(masks, p.masks) and np.allclose(scores, p.scores, rtol=0, atol=0)
    # the MCAP: one message per processed frame and topic, at the frame's stamp; labels = the results' masks
    got = messages(out / "results.mcap")
    assert set(got) == {INSTANCES_TOPIC, DETECTIONS_TOPIC, OVERLAY_TOPIC}
    for topic in got:
        assert [stamp_ns(m.header) for m in got[topic]] == [f.stamp_ns for f in frames]
    for im, lab, det in zip(images, got[INSTANCES_TOPIC], got[DETECTIONS_TOPIC]):
        masks, scores = decoded(results, im["id"], HW)
        labels = np.frombuffer(lab.data, "<u2").reshape(lab.height, lab.width)
        assert np.array_equal(labels, painted(masks, range(1, len(masks) + 1)))
        assert [d.results[0].hypothesis.score for d in det.detections] == list(scores)
        boxes = masks_to_boxes(masks)
        assert [(d.bbox.center.position.x, d.bbox.size_x, d.bbox.center.position.y, d.bbox.size_y)
                for d in det.detections] == [((b[0] + b[2]) / 2, b[2] - b[0], (b[1] + b[3]) / 2, b[3] - b[1])
                                             for b in boxes.astype(np.float64)]
    assert (out / "run.rrd").stat().st_size > 0 and (out / "overlay.avi").is_file()


def test_track_stream_and_resume_on_a_bag(small_onnx, bag, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert infer(small_onnx, full, "--bag", str(bag.path), "--no-overlay") == 1
    assert infer(small_onnx, part, "--bag", str(bag.path), "--no-overlay", "--max-frames", "5") in (0, 1)
    done = len(read(part, "images.json"))
    assert infer(small_onnx, part, "--bag", str(bag.path), "--no-overlay", "--resume",
                 "--bag-out", str(part / "results.mcap")) == 1
    for name in ("results.json", "images.json", "errors.json"):
        assert read(part, name) == read(full, name), name
    resumed = messages(part / f"results_from_{done:06d}.mcap")  # a resumed run does not overwrite: a new file
    assert len(resumed[INSTANCES_TOPIC]) == len(read(full, "images.json")) - done
    tracked = tmp_path / "tracked"
    assert infer(small_onnx, tracked, "--bag", str(bag.path), "--no-overlay", "--track",
                 "--bag-out", str(tracked / "results.mcap")) == 1
    seq, tr = read(full, "results.json"), read(tracked, "results.json")
    assert [(r["image_id"], r["segmentation"], r["score"]) for r in tr] == [
        (r["image_id"], r["segmentation"], r["score"]) for r in seq]
    got = messages(tracked / "results.mcap")
    for im, lab, det in zip(read(tracked, "images.json"), got[INSTANCES_TOPIC], got[DETECTIONS_TOPIC]):
        rs = [r for r in tr if r["image_id"] == im["id"]]
        assert [d.id for d in det.detections] == [str(r["track_id"]) for r in rs]
        masks, _ = decoded(tr, im["id"], HW)
        ids = [r["track_id"] if r["track_id"] > 0 else 0 for r in rs]
        assert np.array_equal(np.frombuffer(lab.data, "<u2").reshape(HW), painted(masks, ids))


def test_max_pixels_refuses_bag_frames_before_decoding(small_onnx, bag, tmp_path):
    out = tmp_path / "out"
    assert infer(small_onnx, out, "--bag", str(bag.path), "--max-pixels", "1000", "--no-overlay") == 1
    errors = read(out, "errors.json")
    assert read(out, "images.json") == [] and len(errors) == 10
    assert all("larger than the limit" in e["reason"] or "no depth message" in e["reason"] for e in errors)


@pytest.mark.parametrize("storage,color,depth", [("sqlite3", "jpeg", "32FC1"), ("ros1", "bgr8", "compressedDepth")])
def test_other_storages_and_encodings(small_onnx, tmp_path, storage, color, depth):
    path = tmp_path / ("rec.bag" if storage == "ros1" else "rec")
    b = write_synthetic_bag(path, n_color=4, hw=HW, storage=storage, color=color, depth=depth, depth_hz=30)
    out = tmp_path / "out"
    assert infer(small_onnx, out, "--bag", str(b.path), "--no-overlay", "--stream") == 0
    src = BagSource(b.path)
    frames = list(src)
    results = read(out, "results.json")
    for i, p in enumerate(expected(small_onnx, frames, src.depth_format)):
        masks, scores = decoded(results, i + 1, HW)
        assert np.array_equal(masks, p.masks) and np.array_equal(scores, p.scores.astype(np.float64))


@pytest.mark.filterwarnings("ignore:.*cut short")
def test_ambiguous_and_damaged_bags_are_one_line(small_onnx, tmp_path, capsys):
    no_depth = write_synthetic_bag(tmp_path / "nodepth", n_color=3, hw=HW, depth_hz=0)
    assert infer(small_onnx, tmp_path / "o1", "--bag", str(no_depth.path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no depth image topic" in err and "--depth-topic" in err
    two = write_synthetic_bag(tmp_path / "two", n_color=3, hw=HW, extra_topics={"/cam/ir": "mono8"})
    assert infer(small_onnx, tmp_path / "o2", "--bag", str(two.path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/cam/ir (Image mono8)" in err and "--rgb-topic" in err
    assert infer(small_onnx, tmp_path / "o3", "--bag", str(two.path), "--rgb-topic", "/cam/ir", "--no-overlay") == 0
    big = write_synthetic_bag(tmp_path / "big", n_color=30, hw=(120, 160), seed=1)  # > 2 MiB: whole chunks
    data = big.storage_file.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    out = tmp_path / "o4"
    capsys.readouterr()
    assert infer(small_onnx, out, "--bag", str(cut), "--no-overlay", "--max-frames", "16") == 1
    err = capsys.readouterr().err
    assert "cut short" in err and str(cut) in err
    n = len(BagSource(cut))  # the colour frames before the damage
    ids = [im["id"] for im in read(out, "images.json")] + [e["image_id"] for e in read(out, "errors.json")]
    assert 0 < n < 30 and sorted(ids) == list(range(1, min(n, 16) + 1)) and len(read(out, "images.json")) >= 5


def test_realsense_recording_equals_predict(small_onnx, tmp_path):
    try:
        import pyrealsense2  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"pyrealsense2 cannot be imported ({exc})")
    from calibnet.data.synthetic_bag import write_realsense_recording
    from calibnet.runtime import RealSenseSource

    rec = tmp_path / "rec.db3"
    write_realsense_recording(rec, n=6, hw=HW, seed=9)
    src = RealSenseSource(rec)
    fmt = src.depth_format
    frames = list(src)
    out = tmp_path / "out"  # one depth range for both runs: the SDK may lose a recording's first frames (one or two,
    # docs/robotics.md), which would change a range measured on the first frames
    assert infer(small_onnx, out, "--realsense", "--realsense-bag", str(rec), "--no-overlay",
                 "--depth-near", repr(fmt.near), "--depth-far", repr(fmt.far)) == 0
    images, results = read(out, "images.json"), read(out, "results.json")
    stamps = [im["stamp_ns"] for im in images]
    assert stamps == sorted(set(stamps)) and len(images) >= 4 and len(frames) >= 4
    by_stamp = dict(zip((f.stamp_ns for f in frames), expected(small_onnx, frames, fmt)))
    same = [(im, by_stamp[im["stamp_ns"]]) for im in images if im["stamp_ns"] in by_stamp]
    assert len(same) >= 2
    for im, p in same:
        masks, scores = decoded(results, im["id"], HW)
        assert np.array_equal(masks, p.masks) and np.array_equal(scores, p.scores.astype(np.float64))
