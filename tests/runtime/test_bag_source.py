"""BagSource on bags written with rosbags: rosbag2 MCAP and sqlite3 and ROS 1; raw, padded and compressed colour;
16UC1, 32FC1 and compressedDepth depth; colour at 30 Hz and depth at 15 Hz with jitter and a missing depth
message; ambiguous and damaged bags; and Runtime.stream over it equal to Runtime.predict."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the robotics extra (pip install '.[robotics]') is not installed")

from calibnet.data.synthetic import make_scene  # noqa: E402
from calibnet.data.synthetic_bag import metric_depth_mm, write_synthetic_bag  # noqa: E402
from calibnet.runtime import BagSource, DepthFormat, InputError, Runtime  # noqa: E402
from calibnet.runtime.apps.sources import Frame, FrameError  # noqa: E402

HW = (40, 56)


def expected_pairs(color, depth):
    """The pairing the issue asks for, computed here by brute force: the nearest depth stamp within half the
    depth topic's median period (ties: the earlier), or None."""
    d = np.array(sorted(depth), np.int64)
    window = int(np.median(np.diff(d))) // 2
    out = []
    for c in sorted(color):
        dist = np.abs(d - c)
        k = int(np.argmin(dist))  # argmin takes the first of equals: the earlier stamp
        out.append((c, int(d[k]) if dist[k] <= window else None))
    return out


@pytest.mark.parametrize("storage,color,depth", [("mcap", "rgb8", "16UC1"), ("sqlite3", "png", "32FC1"),
                                                 ("ros1", "bgr8", "compressedDepth")])
def test_each_colour_frame_gets_the_nearest_depth_within_the_window(tmp_path, storage, color, depth):
    bag = write_synthetic_bag(tmp_path / ("rec.bag" if storage == "ros1" else "rec"), n_color=16, hw=HW,
                              storage=storage, color=color, depth=depth, jitter_ms=4, drop_depth=(3,),
                              step_pad=6 if color == "rgb8" else 0, seed=3)
    src = BagSource(bag.path)
    assert (src.rgb_topic, src.depth_topic, len(src), src.damage) == (bag.rgb_topic, bag.depth_topic, 16, None)
    items = list(src)
    want = expected_pairs(bag.color_stamps, bag.depth_stamps)
    got = [(it.stamp_ns, it.depth_stamp_ns if isinstance(it, Frame) else None) for it in items]
    assert got == want
    unpaired = [it for it in items if isinstance(it, FrameError)]
    assert unpaired and all("no depth message within" in str(it.error) for it in unpaired)  # the missing one
    depths = [d for _, d in want if d is not None]
    assert len(set(depths)) < len(depths)  # 30 Hz colour on 15 Hz depth: a depth message serves two frames
    assert [it.meta["index"] for it in items] == list(range(16))
    # the decoded maps: scene j's colour (png and raw: exact) and its metric depth in metres
    for it in items:
        if isinstance(it, Frame):
            j = int(np.argmin(np.abs(np.array(sorted(bag.color_stamps)) - it.stamp_ns)))
            scene = make_scene(3 + min(int(round(j * 15 / 30)), 7), *HW)
            assert it.rgb.shape == (*HW, 3) and np.array_equal(it.rgb, scene.rgb)
            k = round((it.depth_stamp_ns - bag.color_stamps[0]) / (1e9 / 15))
            mm = metric_depth_mm(make_scene(3 + k, *HW).depth)
            want_m = np.where(mm > 0, mm.astype(np.float32) * np.float32(1e-3), 0)
            tol = 1e-6 if depth == "32FC1" else 0  # mm / 1000 in float32 vs mm x 0.001
            assert it.depth.dtype == np.float32 and np.allclose(np.nan_to_num(it.depth), want_m, rtol=tol, atol=0)


def test_one_steady_depth_range_for_the_whole_bag(tmp_path):
    bag = write_synthetic_bag(tmp_path / "rec", n_color=6, hw=HW, depth_hz=30, seed=5)
    src = BagSource(bag.path, range_frames=3)
    mm = np.concatenate([metric_depth_mm(make_scene(5 + j, *HW).depth).ravel() for j in range(3)])
    valid = mm[mm > 0].astype(np.float32) * np.float32(1e-3)
    assert src.depth_format == DepthFormat("metric", float(valid.min()), float(valid.max()))
    assert BagSource(bag.path, near=0.25, far=6.0).depth_format == DepthFormat("metric", 0.25, 6.0)
    assert BagSource(bag.path, near=0.25, range_frames=3).depth_format == DepthFormat("metric", 0.25,
                                                                                      float(valid.max()))


def test_topics_are_found_or_named_in_one_line(tmp_path):
    no_depth = write_synthetic_bag(tmp_path / "nodepth", n_color=3, hw=HW, depth_hz=0)
    with pytest.raises(InputError) as e:
        BagSource(no_depth.path)
    msg = str(e.value)
    assert "\n" not in msg and "no depth image topic" in msg and "depth_topic=" in msg
    assert "/camera/color/image_raw (Image rgb8)" in msg
    two = write_synthetic_bag(tmp_path / "two", n_color=3, hw=HW, extra_topics={"/camera/ir/image_raw": "mono8"})
    with pytest.raises(InputError) as e:
        BagSource(two.path)
    msg = str(e.value)
    assert "\n" not in msg and "2 colour image topics" in msg and "rgb_topic=" in msg
    assert "/camera/ir/image_raw (Image mono8)" in msg and "/camera/depth/image_rect_raw (Image 16UC1)" in msg
    src = BagSource(two.path, rgb_topic="/camera/ir/image_raw")
    assert src.rgb_topic == "/camera/ir/image_raw" and len(src) == 3
    with pytest.raises(InputError, match="no image topic /nope .*image topics: /camera"):
        BagSource(two.path, rgb_topic="/nope")
    with pytest.raises(InputError, match="not a ROS bag"):
        BagSource(tmp_path / "two" / "metadata.yaml")


def test_a_bag_cut_short_keeps_the_frames_before_the_damage(tmp_path):
    bag = write_synthetic_bag(tmp_path / "rec", n_color=30, hw=(120, 160), seed=1)  # > 2 MiB: two whole chunks
    data = bag.storage_file.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.warns(Warning, match="cut short"):
        src = BagSource(cut)
    assert src.damage and "\n" not in src.damage and "cut short" in src.damage and str(cut) in src.damage
    full = list(BagSource(bag.path))
    part = list(src)
    assert 0 < len(part) == len(src) < len(full)
    for a, b in zip(part, full):
        assert a.stamp_ns == b.stamp_ns and a.depth_stamp_ns == b.depth_stamp_ns
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    ros1 = write_synthetic_bag(tmp_path / "rec.bag", n_color=6, hw=HW, storage="ros1")
    cut1 = tmp_path / "cut.bag"
    cut1.write_bytes(ros1.path.read_bytes()[:-4000])
    with pytest.raises(InputError) as e:
        BagSource(cut1)
    assert "\n" not in str(e.value) and "cannot read bag" in str(e.value) and "rosbag reindex" in str(e.value)


def test_headers_without_stamps_count_at_their_log_time(tmp_path):
    bag = write_synthetic_bag(tmp_path / "rec", n_color=4, hw=HW, depth_hz=30, unstamped=True)
    frames = list(BagSource(bag.path))
    assert [(f.stamp_ns, f.depth_stamp_ns) for f in frames] == [(t + 2_000_000, d + 3_000_000) for t, d in
                                                                zip(bag.color_stamps, bag.depth_stamps)]


def test_a_message_that_cannot_be_decoded_is_that_frame_s_error_only(tmp_path, monkeypatch):
    from calibnet.runtime.apps.sources import bag as bag_module

    b = write_synthetic_bag(tmp_path / "rec", n_color=4, hw=HW, depth_hz=30)
    real = bag_module.decode_color

    def flaky(msg, limits, what):
        if str(b.color_stamps[1]) in what:
            raise MemoryError("no room")  # not an InputError: still this frame's error, not the run's end
        if str(b.color_stamps[2]) in what:
            msg.data = msg.data[:10]  # a short message: the decoder's own InputError
        return real(msg, limits, what)

    monkeypatch.setattr(bag_module, "decode_color", flaky)
    items = list(BagSource(b.path))
    assert [type(it).__name__ for it in items] == ["Frame", "FrameError", "FrameError", "Frame"]
    assert "cannot decode" in str(items[1].error) and "no room" in str(items[1].error)
    assert "bytes of data" in str(items[2].error)
    with pytest.raises(InputError):
        list(BagSource(b.path, errors="raise"))


def test_read_skips_frames_without_decoding_them(tmp_path):
    bag = write_synthetic_bag(tmp_path / "rec", n_color=8, hw=HW, depth_hz=30)
    src = BagSource(bag.path)
    assert [f.meta["index"] for f in src.read({1, 5, 6})] == [1, 5, 6]


def test_stream_over_a_bag_equals_predict_on_the_same_arrays(tmp_path, small_onnx):
    bag = write_synthetic_bag(tmp_path / "rec", n_color=10, hw=HW, jitter_ms=3, drop_depth=(2,), seed=2)
    src = BagSource(bag.path)
    errors: list[tuple[int, str]] = []
    with Runtime.open(small_onnx, threads=1) as rt, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streamed = [(f.source, p) for f, p in rt.stream(src, on_error=lambda i, n, e: errors.append((i, n)))]
        frames = [it for it in BagSource(bag.path) if isinstance(it, Frame)]
        direct = [rt.predict(f.rgb, f.depth, depth_format=src.depth_format) for f in frames]
    assert errors and len(streamed) + len(errors) == 10
    assert [f.stamp_ns for f, _ in streamed] == [f.stamp_ns for f in frames]
    for (_, a), b in zip(streamed, direct):
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)
