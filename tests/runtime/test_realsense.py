"""RealSenseSource on a recording written without a camera (pyrealsense2's software device and recorder: a
rosbag2 sqlite3 .db3), played back frame by frame; Runtime.stream over it equals Runtime.predict."""

from __future__ import annotations

import numpy as np
import pytest

try:
    import pyrealsense2  # noqa: F401
except ImportError as exc:  # the wheel, or the system library libusb-1.0 it needs
    pytest.skip(f"pyrealsense2 cannot be imported ({exc}): pip install '.[robotics]' and apt-get install "
                "libusb-1.0-0", allow_module_level=True)

from calibnet.data.synthetic_bag import write_realsense_recording  # noqa: E402
from calibnet.runtime import DepthFormat, InputError, RealSenseSource, Runtime  # noqa: E402
from calibnet.runtime.apps.sources import Frame  # noqa: E402

HW = (48, 64)
MAX_LOST = 2  # leading frames the SDK may lose (see _every_frame_once_in_order)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rs") / "rec.db3"
    return path, write_realsense_recording(path, n=6, hw=HW, seed=4)


def test_a_recording_plays_back_every_frame_once_in_order(recording):
    path, written = recording
    src = RealSenseSource(path)
    items = list(src)
    assert all(isinstance(f, Frame) for f in items)
    by_stamp = {stamp: (rgb, z16) for rgb, z16, stamp in written}
    _every_frame_once_in_order(items, [stamp for _, _, stamp in written])
    for i, f in enumerate(items):
        rgb, z16 = by_stamp[f.stamp_ns]
        assert f.meta["index"] == i and f.stamp_ns == f.depth_stamp_ns
        assert np.array_equal(f.rgb, rgb)
        # depth aligned to colour (equal intrinsics, identity extrinsics) in metres: the recorded values where
        # the alignment lands exactly on a pixel
        assert f.depth.dtype == np.float32 and f.depth.shape == HW
        assert (f.depth == z16.astype(np.float32) * np.float32(0.001)).mean() > 0.9
    fmt = RealSenseSource(path, range_frames=3).depth_format
    ranges = [np.concatenate([z[z > 0] for _, z, _ in written[k:k + 3]]).astype(np.float32) * np.float32(0.001)
              for k in range(MAX_LOST + 1)]  # the first three frames the playback gave
    assert fmt.kind == "metric"
    assert any(abs(fmt.near - v.min()) < 0.02 and abs(fmt.far - v.max()) < 0.02 for v in ranges)
    assert RealSenseSource(path, near=0.3, far=5.0).depth_format == DepthFormat("metric", 0.3, 5.0)
    with pytest.raises(InputError, match="not found"):
        RealSenseSource(path.with_name("missing.db3"))
    garbage = path.with_name("garbage.db3")
    garbage.write_bytes(b"not a recording")
    with pytest.raises(InputError, match=r"cannot start the RealSense recording .*garbage\.db3"):
        list(RealSenseSource(garbage))


def test_stream_over_a_recording_equals_predict(recording, small_onnx):
    path, written = recording
    frames = list(RealSenseSource(path))
    src = RealSenseSource(path)
    with Runtime.open(small_onnx, threads=1) as rt:
        fmt = src.depth_format  # measured on the first frames, which the source keeps and hands out
        streamed = list(rt.stream(src))
        direct = [rt.predict(f.rgb, f.depth, depth_format=fmt) for f in frames]
    stamps = [stamp for _, _, stamp in written]  # each playback may lose the first frame: both held to the recording
    _every_frame_once_in_order(frames, stamps)
    _every_frame_once_in_order([f.source for f, _ in streamed], stamps)
    by_stamp = {f.stamp_ns: p for f, p in zip(frames, direct)}
    same = [(a, by_stamp[f.source.stamp_ns]) for f, a in streamed if f.source.stamp_ns in by_stamp]
    assert len(same) >= len(written) - 2 * MAX_LOST
    for a, b in same:
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)


def _every_frame_once_in_order(items, stamps):
    """The recording's frames once each, in order, from the first one the playback gave: the SDK starts a
    recording in real time, and the frames it plays before calibnet switches it to frame by frame can be lost
    (docs/robotics.md): at most MAX_LOST of them here."""
    got = [f.stamp_ns for f in items]
    assert len(got) >= len(stamps) - MAX_LOST and got == stamps[len(stamps) - len(got):], (got, stamps)
