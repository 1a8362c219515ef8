"""Depth input forms: 8-bit maps as is, 16-bit / float metric depth and disparity converted to the model's
8-bit convention (near-dark by default), invalid pixels filled with the far end."""

from __future__ import annotations

import numpy as np
import pytest

from calibnet.runtime import DepthFormat, InputError, InputWarning, ModelMetadata, Runtime
from calibnet.runtime.core.depth import depth_to_u8
from calibnet.runtime.core.preprocess import prepare_frame


def test_eight_bit_maps_are_used_as_is_or_inverted():
    d = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(depth_to_u8(d), d)
    assert np.array_equal(depth_to_u8(np.dstack([d, d, d])), d)  # gray PNG read as RGB
    assert np.array_equal(depth_to_u8(d, DepthFormat("u8-inverted")), 255 - d)
    with pytest.raises(InputError, match="needs an 8-bit"):
        depth_to_u8(d.astype(np.uint16), DepthFormat("u8"))


def test_millimetres_per_frame_min_max_near_dark():
    mm = np.array([[0, 500], [1000, 4500]], np.uint16)  # 0 = no reading
    np.testing.assert_array_equal(depth_to_u8(mm), [[255, 0], [32, 255]])  # near 500 -> 0, far 4500 -> 255
    np.testing.assert_array_equal(depth_to_u8(mm, DepthFormat(direction="near-bright")), [[0, 255], [223, 0]])


def test_fixed_range_clips_and_keeps_frames_comparable():
    fmt = DepthFormat(near=1000, far=3000)
    a = depth_to_u8(np.array([[500, 1000], [2000, 9000]], np.uint16), fmt)
    np.testing.assert_array_equal(a, [[0, 0], [128, 255]])
    b = depth_to_u8(np.array([[2000, 2000], [2000, 0]], np.uint16), fmt)  # same distance, same value
    assert b[0, 0] == a[1, 0] and b[1, 1] == 255
    with pytest.raises(InputError, match="near < far"):
        depth_to_u8(np.ones((4, 4), np.float32), DepthFormat(near=3.0, far=1.0))


def test_float_metres_with_invalid_pixels_get_the_far_end():
    m = np.array([[np.nan, 1.0, np.inf], [-2.0, 3.0, 0.0]], np.float32)
    np.testing.assert_array_equal(depth_to_u8(m), [[255, 0, 255], [255, 255, 255]])
    np.testing.assert_array_equal(depth_to_u8(m, DepthFormat(direction="near-bright")), [[0, 255, 0], [0, 0, 0]])
    with pytest.warns(InputWarning, match="no valid pixel"):
        out = depth_to_u8(np.full((3, 5), np.nan))
    assert out.shape == (3, 5) and (out == 255).all()


def test_disparity_larger_is_nearer():
    disp = np.array([[64.0, 16.0], [4.0, 0.0]])  # 0 disparity: no match
    # linear in disparity: 16 sits at (64 - 16) / (64 - 4) = 0.8 of the way to the far end
    np.testing.assert_array_equal(depth_to_u8(disp, DepthFormat("disparity")), [[0, 204], [255, 255]])


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.float64])
def test_conversion_preserves_depth_order(dtype):
    g = np.random.default_rng(0)
    z = g.uniform(300, 8000, (40, 60)).astype(dtype)
    near_dark = depth_to_u8(z).astype(int)
    order = np.argsort(z.ravel(), kind="stable")
    assert (np.diff(near_dark.ravel()[order]) >= 0).all()  # farther is never darker
    assert near_dark.min() == 0 and near_dark.max() == 255
    assert np.array_equal(depth_to_u8(z, DepthFormat(direction="near-bright")).astype(int), 255 - near_dark)


def test_format_validation():
    for bad in ({"kind": "mm"}, {"direction": "up"}, {"near": -1.0}, {"far": float("nan")}, {"near": 2.0, "far": 2.0}):
        with pytest.raises(ValueError):
            DepthFormat(**bad)


class _FakeBackend:
    name = "fake"
    input_names = ["rgb", "depth", "valid_hw"]
    output_names = ["pred_logits", "pred_scores", "pred_masks", "depth_trust"]

    def __init__(self, meta: ModelMetadata) -> None:
        self.metadata = meta

    def run(self, feeds):
        b, _, H, W = feeds["rgb"].shape
        return {"pred_logits": np.full((b, 4, 1), -20.0, np.float32), "pred_scores": np.zeros((b, 4, 1), np.float32),
                "pred_masks": np.zeros((b, 4, H // 2, W // 2), np.float32), "depth_trust": np.ones((b, 3), np.float32)}

    def close(self):
        pass


def test_runtime_uses_the_models_depth_direction_and_strict_option():
    mm = np.full((64, 96), 2000, np.uint16)
    mm[:, 48:] = 1000  # right half nearer
    rgb = np.zeros((64, 96, 3), np.uint8)
    dark = Runtime(_FakeBackend(ModelMetadata(dynamic_hw=True)))
    bright = Runtime(_FakeBackend(ModelMetadata(dynamic_hw=True, depth_direction="near-bright")))
    d0, d1 = dark.prepare(rgb, mm).depth[0], bright.prepare(rgb, mm).depth[0]
    assert d0[10, 10] == 255 and d0[10, 400] == 0 and d1[10, 10] == 0 and d1[10, 400] == 255
    assert bright.prepare(rgb, mm, depth_format=DepthFormat(direction="near-dark")).depth[0, 10, 10] == 255
    with pytest.raises(InputError, match="sizes differ"):
        Runtime(_FakeBackend(ModelMetadata(dynamic_hw=True)), strict=True).predict(rgb, mm[:32])
    with pytest.warns(InputWarning, match="resized"):
        pred = dark.predict(rgb, mm[:32])
    assert pred.masks.shape == (0, 64, 96)


def test_no_instance_gives_an_empty_prediction_that_renders():
    from calibnet.runtime.apps.overlay import draw_overlay

    rt = Runtime(_FakeBackend(ModelMetadata(dynamic_hw=True)))
    rgb = np.full((70, 90, 3), 128, np.uint8)
    pred = rt.predict(rgb, np.full((70, 90), 100, np.uint8))
    assert len(pred) == 0 and pred.masks.shape == (0, 70, 90) and pred.masks.dtype == bool
    assert pred.boxes.shape == (0, 4) and pred.kernel_index.shape == (0,)
    assert pred.rle() == [] and pred.coco_results(3) == []
    assert not pred.saliency_map().any()
    over = draw_overlay(rgb, pred)
    assert over.shape == rgb.shape and over.dtype == np.uint8


def test_prepare_frame_reads_sixteen_bit_depth():
    rgb = np.zeros((64, 96, 3), np.uint8)
    mm = np.tile(np.linspace(400, 4000, 96).astype(np.uint16), (64, 1))
    f = prepare_frame(rgb, mm)
    assert f.depth[0, 0, 0] == 0 and f.depth[0, 0, 479] == 255 and f.depth.dtype == np.float32


def test_one_steady_range_measured_on_several_frames():
    a = np.array([[0.0, 1.5], [np.nan, 2.0]], np.float32)  # 0 and NaN: no reading
    b = np.array([[0.8, 3.0], [-1.0, np.inf]], np.float32)
    lo = float(np.float32(0.8))
    assert DepthFormat("metric").with_range_of([a, b]) == DepthFormat("metric", lo, 3.0)
    assert DepthFormat("metric", near=0.5).with_range_of([a, b]) == DepthFormat("metric", 0.5, 3.0)
    assert DepthFormat("disparity").with_range_of([a, b]) == DepthFormat("disparity", 3.0, lo)  # larger = nearer
    assert DepthFormat("metric", 1.0, 2.0).with_range_of([a, b]) == DepthFormat("metric", 1.0, 2.0)
    assert DepthFormat("metric").with_range_of([np.full((2, 2), 1.5, np.float32)]) == DepthFormat("metric")
    assert DepthFormat("auto").with_range_of([a]) == DepthFormat("auto")
    # the steady range maps the same distance to the same level in every frame
    fmt = DepthFormat("metric").with_range_of([a, b])
    assert depth_to_u8(a, fmt)[0, 1] == depth_to_u8(np.array([[1.5, 9.0]], np.float32), fmt)[0, 0]
