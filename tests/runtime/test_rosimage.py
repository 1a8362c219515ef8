"""The one decoder of ROS image messages (runtime/apps/sources/rosimage.py) and the pairing rule
(runtime/apps/sources/pairing.py), on messages built by hand: no bag, no ROS."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from calibnet.runtime.apps.rosmsgs import image_message
from calibnet.runtime.apps.sources.pairing import default_max_skew_ns, median_period_ns, nearest_stamps
from calibnet.runtime.apps.sources.rosimage import decode_color, decode_depth, image_kind, stamp_ns
from calibnet.runtime.core.errors import InputError
from calibnet.runtime.core.limits import InputLimits

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
MM = RNG.integers(0, 5000, (5, 7)).astype(np.uint16)
NO_LIMITS = InputLimits(0, 0)


def msg(**fields):
    """A message object as rclpy or rosbags gives it (header as attributes)."""
    hdr = fields.pop("header", {"stamp": {"sec": 1, "nanosec": 5}, "frame_id": "cam"})
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(**hdr["stamp"]), frame_id=hdr["frame_id"]),
                           **fields)


def raw(pixels, encoding, step=None, bigendian=False):
    m = image_message(pixels, encoding, 1_000_000_005, "cam", step)
    if bigendian:  # the same values, stored big-endian
        a = np.ascontiguousarray(pixels)
        be = a.astype(a.dtype.newbyteorder(">")).view(np.uint8).reshape(a.shape[0], -1)
        if step:
            be = np.concatenate([be, np.zeros((be.shape[0], step - be.shape[1]), np.uint8)], 1)
        m["data"], m["is_bigendian"] = be.reshape(-1), 1
    return msg(**m)


@pytest.mark.parametrize("encoding,pixels", [
    ("rgb8", RGB), ("bgr8", RGB[:, :, ::-1]), ("rgba8", np.dstack([RGB, np.full((5, 7), 9, np.uint8)])),
    ("bgra8", np.dstack([RGB[:, :, ::-1], np.full((5, 7), 9, np.uint8)]))])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_and_padded_rows_decode_to_the_same_rgb(encoding, pixels, pad):
    m = raw(pixels, encoding, step=pixels.shape[1] * pixels.shape[2] + pad if pad else None)
    assert m.step == 7 * pixels.shape[2] + pad and image_kind(m) == "color"
    out = decode_color(m, NO_LIMITS)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, RGB)


def test_mono8_becomes_gray_rgb():
    out = decode_color(raw(RGB[:, :, 0], "mono8", step=9), NO_LIMITS)
    assert np.array_equal(out, np.repeat(RGB[:, :, :1], 3, axis=2))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 6])
def test_depth_16uc1_is_millimetres_and_32fc1_metres(bigendian, pad):
    m16 = raw(MM, "16UC1", step=14 + pad if pad else None, bigendian=bigendian)
    assert image_kind(m16) == "depth"
    d16 = decode_depth(m16, NO_LIMITS)
    assert d16.dtype == np.float32 and np.array_equal(d16, MM.astype(np.float32) * np.float32(1e-3))
    metres = MM.astype(np.float32) / 1000
    metres[0, 0] = np.nan  # no reading
    d32 = decode_depth(raw(metres, "32FC1", step=28 + pad if pad else None, bigendian=bigendian), NO_LIMITS)
    assert np.array_equal(d32, metres, equal_nan=True)


def test_compressed_colour_and_compressed_depth():
    ok, jpg = cv2.imencode(".png", RGB[:, :, ::-1])
    color = msg(format="rgb8; png compressed bgr8", data=np.frombuffer(jpg.tobytes(), np.uint8))
    assert image_kind(color) == "color" and np.array_equal(decode_color(color, NO_LIMITS), RGB)
    ok, png = cv2.imencode(".png", MM)
    d16 = msg(format="16UC1; compressedDepth png", data=struct.pack("<iff", 0, 0, 0) + png.tobytes())
    assert image_kind(d16) == "depth"
    assert np.array_equal(decode_depth(d16, NO_LIMITS), MM.astype(np.float32) * np.float32(1e-3))
    # 32FC1: quantised inverse depth (compressed_depth_image_transport: inv = A / depth + B, 0 = no reading)
    qa, qb = 100.0 * 101.0, 1.0 - 100.0 * 101.0 / 10.0
    metres = np.array([[0.5, 1.0], [2.0, 0.0]], np.float32)
    inv = np.where(metres > 0, np.rint(qa / np.where(metres > 0, metres, 1) + qb), 0).astype(np.uint16)
    ok, png = cv2.imencode(".png", inv)
    d32 = msg(format="32FC1; compressedDepth png", data=struct.pack("<iff", 0, qa, qb) + png.tobytes())
    out = decode_depth(d32, NO_LIMITS)
    assert np.isnan(out[1, 1]) and np.allclose(out[metres > 0], metres[metres > 0], rtol=2e-3)


def test_headers_are_checked_before_anything_is_allocated():
    huge = msg(height=200_000, width=200_000, encoding="rgb8", is_bigendian=0, step=600_000,
               data=np.zeros(16, np.uint8))
    with pytest.raises(InputError, match="larger than the limit"):
        decode_color(huge, InputLimits())
    with pytest.raises(InputError, match="bytes of data"):  # no limit: the data length still bounds it
        decode_color(huge, NO_LIMITS)
    short = raw(RGB, "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(InputError, match="105 bytes of data, got step 21 and 104 bytes"):
        decode_color(short, NO_LIMITS)
    narrow = raw(RGB, "rgb8")
    narrow.step = 20
    with pytest.raises(InputError, match="step >= 21"):
        decode_color(narrow, NO_LIMITS)
    with pytest.raises(InputError, match="'yuv422'.*rgb8"):
        decode_color(raw(RGB, "yuv422"), NO_LIMITS)
    with pytest.raises(InputError, match="rvl"):
        decode_depth(msg(format="16UC1; compressedDepth rvl", data=np.zeros(40, np.uint8)), NO_LIMITS)


def test_stamps_and_pairing_rule():
    assert stamp_ns(msg().header) == 1_000_000_005
    assert median_period_ns([0, 10, 30, 40]) == 10 and median_period_ns([5]) is None
    assert default_max_skew_ns([0, 66, 133]) == 33 and default_max_skew_ns([7], [0, 20, 40]) == 10
    assert default_max_skew_ns([], []) == 0
    depth = [100, 0, 200]  # any order: indices refer to this list
    got = nearest_stamps([0, 40, 50, 60, 149, 150, 151, 260, 300], depth, 50)
    # 50 is equally far from 0 and 100: the earlier; 150 likewise; 260 and 300 are too far from 200
    assert got.tolist() == [1, 1, 1, 0, 0, 0, 2, -1, -1]
    assert nearest_stamps([1, 2], [], 10).tolist() == [-1, -1]
