"""Torch-free runtime: Pillow-exact preprocessing, official post-processing, end-to-end vs the official
pipeline (ref_B e2e_*), and clear errors for bad frames."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import predict_without_torch

from calibnet.runtime import InputError, InputWarning, Runtime
from calibnet.runtime.core.postprocess import decode_masks_and_boxes, select_instances
from calibnet.runtime.core.preprocess import prepare_frame
from calibnet.runtime.core.resize import (
    pil_bilinear_resize_u8,
    pil_bilinear_resize_u8_numpy,
    shortest_edge_size,
    torch_bilinear_matrix,
)

SIZES = [(375, 500), (200, 300), (240, 180), (1080, 1920), (33, 47)]


@pytest.mark.parametrize("hw", SIZES)
def test_resize_equals_pillow_bilinear(hw):
    Image = pytest.importorskip("PIL.Image")
    g = np.random.default_rng(hw[0])
    for img in ((g.random((*hw, 3)) * 255).astype(np.uint8), (g.random(hw) * 255).astype(np.uint8)):
        size = shortest_edge_size(*hw, 320, 480)
        want = np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.BILINEAR))
        assert np.array_equal(pil_bilinear_resize_u8(img, size), want)
        # the numpy path (used without Pillow) is bit-exact too, upscaling and downscaling
        assert np.array_equal(pil_bilinear_resize_u8_numpy(img, size), want)
        up = (hw[0] * 2 + 1, hw[1] + 3)
        assert np.array_equal(pil_bilinear_resize_u8_numpy(img, up),
                              np.asarray(Image.fromarray(img).resize((up[1], up[0]), Image.BILINEAR)))


def test_shortest_edge_size_rounding():
    assert shortest_edge_size(375, 500, 320, 480) == (320, 427)
    assert shortest_edge_size(1080, 1920, 320, 480) == (270, 480)
    assert shortest_edge_size(500, 375, 320, 480) == (427, 320)


@pytest.mark.parametrize("sizes", [(160, 320), (160, 97), (224, 501), (7, 7)])
def test_bilinear_matrix_equals_torch_interpolate(sizes):
    torch = pytest.importorskip("torch")
    n_in, n_out = sizes
    x = torch.rand(1, 1, n_in, 5, generator=torch.Generator().manual_seed(n_in), dtype=torch.float64)
    want = torch.nn.functional.interpolate(x, size=(n_out, 5), mode="bilinear", align_corners=False)[0, 0]
    got = torch_bilinear_matrix(n_in, n_out).astype(np.float64) @ x[0, 0].numpy()
    np.testing.assert_allclose(got, want.numpy(), atol=1e-6)  # float64: only the matrix's float32 weights differ


def test_selection_keeps_nothing_below_threshold():
    keep, scores, probs = select_instances(np.full((5, 1), -20.0), np.full((5, 1), -20.0), np.zeros((5, 4, 6)),
                                           0.005, 0.45, 50)
    assert len(keep) == len(scores) == len(probs) == 0
    assert decode_masks_and_boxes(probs, (8, 12), (8, 12), (30, 40), 0.45)[0].shape == (0, 30, 40)


def test_bad_frames_give_clear_errors():
    rgb = np.zeros((64, 96, 3), np.uint8)
    depth = np.zeros((64, 96), np.uint8)
    with pytest.raises(InputError, match="too small"):
        prepare_frame(rgb[:20], depth[:20])
    with pytest.raises(InputError, match="uint8"):
        prepare_frame(rgb.astype(np.float32), depth)
    with pytest.raises(InputError, match="sizes differ"):
        prepare_frame(rgb, depth[:50], strict=True)
    with pytest.warns(InputWarning, match="depth resized"):
        resized = prepare_frame(rgb, np.full((50, 96), 200, np.uint8))
    assert resized.depth.shape == (1, 320, 480) and (resized.depth[0] == 200).all()
    with pytest.raises(InputError, match="empty"):
        prepare_frame(rgb[:0], depth)
    with pytest.raises(InputError, match="empty"):
        prepare_frame(rgb, depth[:, :0])
    with pytest.raises(InputError, match="dtype bool"):
        prepare_frame(rgb, depth.astype(bool))
    with pytest.raises(InputError, match="depth must be"):
        prepare_frame(rgb, np.zeros((64, 96, 2), np.uint8))
    with pytest.raises(InputError, match="shape"):
        prepare_frame(np.zeros((64, 96, 5), np.uint8), depth)
    gray = prepare_frame(rgb[:, :, 0], depth)
    assert gray.rgb.shape == (3, 320, 480) and gray.resized_hw == (320, 480)
    rgba = prepare_frame(np.dstack([rgb, rgb[:, :, :1]]), depth)
    assert rgba.rgb.shape == (3, 320, 480)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        Runtime.open(tmp_path / "missing.onnx")


@pytest.fixture(scope="module")
def r50_onnx_320x448(r50_model, tmp_path_factory):
    export = pytest.importorskip("calibnet.export")
    return export.export_onnx(r50_model, tmp_path_factory.mktemp("rt") / "r50_320x448.onnx", height=320, width=448)


@pytest.mark.slow
def test_predict_equals_official_end_to_end(r50_onnx_320x448, official_dir):
    ref = np.load(official_dir / "ref_B_375x500.npz")
    pred = Runtime.open(r50_onnx_320x448).predict(ref["net_rgb_u8"], ref["net_depth_u8"])
    k, h, w = ref["e2e_masks_shape"]
    masks = np.unpackbits(ref["e2e_masks_packed"], axis=-1)[..., :w].astype(bool)
    scores = ref["e2e_scores"]
    assert len(pred) == len(scores) == k
    order = np.argsort(-scores, kind="stable")
    assert np.abs(pred.scores - scores[order]).max() <= 1e-3
    assert (pred.masks == masks[order]).mean() >= 0.999
    assert pred.masks.shape == (k, h, w) and pred.boxes.shape == (k, 4)
    assert set(pred.timings) == {"pre", "infer", "post"}
    rle = pred.rle()
    assert len(rle) == k and rle[0]["size"] == [h, w]


@pytest.mark.slow
def test_full_predict_without_torch(r18, tmp_path):
    from calibnet.export import export_onnx

    path = export_onnx(r18, tmp_path / "r18.onnx", height=320, width=480)
    res = predict_without_torch(path, (240, 360), then="print('ok', len(p))\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok")


def test_boxes_and_saliency_map_from_masks():
    from calibnet.runtime.core.postprocess import masks_to_boxes
    from calibnet.runtime.core.prediction import Prediction

    masks = np.zeros((3, 10, 12), bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 4:10, 0:2] = True  # touches the bottom/left edges; overlaps nothing
    masks[0, 9, 11] = True  # a stray pixel widens box 0 to the corner
    boxes = masks_to_boxes(masks)
    np.testing.assert_array_equal(boxes, [[3, 2, 12, 10], [0, 4, 2, 10], [0, 0, 0, 0]])
    masks[1, 2:4, 3:5] = True  # overlaps instance 0 (higher score wins)
    pred = Prediction(masks=masks, scores=np.array([0.9, 0.4, 0.1], np.float32), boxes=boxes,
                      depth_trust=np.zeros(3, np.float32), kernel_index=np.arange(3))
    sal = pred.saliency_map()
    assert sal.dtype == np.float32 and sal.shape == (10, 12)
    assert sal[3, 4] == np.float32(0.9) and sal[6, 0] == np.float32(0.4) and sal[0, 0] == 0
    empty = Prediction(masks=np.zeros((0, 7, 5), bool), scores=np.zeros(0, np.float32), boxes=np.zeros((0, 4)),
                       depth_trust=np.zeros(3, np.float32), kernel_index=np.zeros(0, np.int64))
    assert empty.saliency_map().shape == (7, 5) and not empty.saliency_map().any() and empty.rle() == []


@pytest.mark.parametrize("seed", range(6))
def test_decode_masks_matches_torch_interpolate(seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    g = np.random.default_rng(seed)
    mh, mw = (int(v) for v in g.integers(8, 40, 2))
    padded = (2 * mh, 2 * mw)
    resized = (int(g.integers(mh, padded[0] + 1)), int(g.integers(mw, padded[1] + 1)))
    original = (int(g.integers(16, 200)), int(g.integers(16, 200)))  # up- and downscaling
    probs = 1 / (1 + np.exp(-3 * g.normal(size=(4, mh, mw)))).astype(np.float32)
    t = F.interpolate(torch.from_numpy(probs)[None], size=padded, mode="bilinear", align_corners=False)
    t = t[:, :, : resized[0], : resized[1]]
    want = (F.interpolate(t, size=original, mode="bilinear", align_corners=False)[0] > 0.45).numpy()
    got = decode_masks_and_boxes(probs, padded, resized, original, 0.45)[0]
    assert got.shape == want.shape and (got != want).mean() <= 1e-4
