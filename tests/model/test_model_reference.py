"""The R50 model reproduces the official CalibNet outputs (../shared/official reference files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import padded_network_input  # noqa: E402

import calibnet  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("ref_name", ["ref_A_320x480.npz", "ref_B_375x500.npz"])
def test_reproduces_official_reference(r50_model, official_dir, ref_name):
    ref = np.load(official_dir / ref_name)
    rgb, depth, hw = padded_network_input(ref["net_rgb_u8"], ref["net_depth_u8"])
    with torch.no_grad():
        out = r50_model(rgb, depth, image_sizes=[hw])
    for key, tol in (("pred_logits", 1e-4), ("pred_scores", 1e-4), ("pred_masks", 1e-3)):
        got = out[key].numpy()
        assert got.shape == ref[key].shape, key
        assert np.abs(got - ref[key]).max() <= tol, (key, float(np.abs(got - ref[key]).max()))
    agree = ((out["pred_masks"].numpy() > 0) == (ref["pred_masks"] > 0)).mean()
    assert agree >= 0.9999, agree
    trust = out["depth_trust"]
    assert trust.shape == (1, 3) and bool(((trust >= 0) & (trust <= 1)).all())


@pytest.mark.slow
def test_padding_value_does_not_matter_and_batch_equals_single(r50_model, official_dir):
    """Normalize-then-pad: the raw padding value is irrelevant; a padded batch of two images of
    different sizes equals each image run alone."""
    ref = np.load(official_dir / "ref_B_375x500.npz")
    rgb, depth, (h, w) = padded_network_input(ref["net_rgb_u8"], ref["net_depth_u8"])
    noisy_rgb, noisy_depth = rgb.clone(), depth.clone()
    g = torch.Generator().manual_seed(1)
    noisy_rgb[..., h:, :] = torch.rand(noisy_rgb[..., h:, :].shape, generator=g) * 255
    noisy_depth[..., :, w:] = 255.0
    # a second, smaller (portrait-cropped) image in the same batch
    rgb2, depth2 = rgb.clone(), depth.clone()
    h2, w2 = 300, 200
    rgb2[..., h2:, :] = 7.0
    rgb2[..., :, w2:] = 7.0
    depth2[..., h2:, :] = 0.0
    depth2[..., :, w2:] = 0.0
    with torch.no_grad():
        a = r50_model(rgb, depth, image_sizes=[(h, w)])
        b = r50_model(noisy_rgb, noisy_depth, image_sizes=torch.tensor([[h, w]]))
        batch = r50_model(torch.cat([noisy_rgb, rgb2]), torch.cat([noisy_depth, depth2]),
                          image_sizes=[(h, w), (h2, w2)])
        single2 = r50_model(rgb2 * 0 + rgb, depth2 * 0 + depth, image_sizes=[(h2, w2)])
    for key in ("pred_logits", "pred_scores", "pred_masks"):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-4)
        np.testing.assert_allclose(batch[key][0].numpy(), a[key][0].numpy(), atol=1e-3)
        np.testing.assert_allclose(batch[key][1].numpy(), single2[key][0].numpy(), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(480, 320), (256, 640), (64, 96)])
def test_other_aspect_ratios_shapes(r50_model, shape):
    H, W = shape
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, H, W, generator=g) * 255
    depth = torch.rand(1, 1, H, W, generator=g) * 255
    with torch.no_grad():
        out = r50_model(rgb, depth)
    assert out["pred_logits"].shape == (1, 50, 1)
    assert out["pred_scores"].shape == (1, 50, 1)
    assert out["pred_masks"].shape == (1, 50, H // 2, W // 2)
    assert all(torch.isfinite(out[k]).all() for k in ("pred_logits", "pred_scores", "pred_masks"))


def test_state_dict_and_params_equal_official_r50(official_dir):
    manifest = json.loads((official_dir / "manifest_r50.json").read_text())
    cfg = calibnet.CalibNetConfig.from_yaml(official_dir / "configs" / "CalibNet_R50_50e_50q_320size.yaml")
    model = calibnet.CalibNet(cfg)
    sd = model.state_dict()
    assert [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()] == [
        (e["name"], e["shape"], e["dtype"]) for e in manifest["entries"]
    ]
    counts = calibnet.count_parameters(model)
    assert counts.total == manifest["params"]["total"] == 78_901_550
    assert counts.without_aux == manifest["params"]["without_aux_heads"]
    assert counts.by_module == manifest["params"]["by_module"]


def test_state_dict_and_params_equal_official_r101(official_dir):
    manifest = json.loads((official_dir / "manifest_r101.json").read_text())
    cfg = calibnet.CalibNetConfig.from_yaml(official_dir / "configs" / "CalibNet_R101_50e_50q_320size.yaml")
    model = calibnet.CalibNet(cfg)
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == [
        (e["name"], e["shape"]) for e in manifest["entries"]
    ]
    counts = calibnet.count_parameters(model)
    assert counts.total == manifest["params"]["total"]
    assert counts.without_aux == manifest["params"]["without_aux_heads"]
