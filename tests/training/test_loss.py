"""Loss terms: formulas of the official criterion, signs, finiteness, normalization, empty images."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from calibnet.config import LossConfig  # noqa: E402
from calibnet.training.losses import (  # noqa: E402
    CalibNetCriterion,
    dice_loss,
    mask_iou,
    sigmoid_focal_loss,
    union_saliency_target,
)

H, W = 32, 64  # padded network input; predictions at H/2 x W/2, aux heads at 1/8 and 1/4


def _outputs(B=2, N=5, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    out = {
        "pred_logits": torch.randn(B, N, 1, generator=g),
        "pred_scores": torch.randn(B, N, 1, generator=g),
        "pred_masks": torch.randn(B, N, H // 2, W // 2, generator=g) * 3,
        "aux_rgb_t3": torch.randn(B, 1, H // 8, W // 8, generator=g),
        "aux_depth_t3": torch.randn(B, 1, H // 8, W // 8, generator=g),
        "aux_rgb_r2": torch.randn(B, 1, H // 4, W // 4, generator=g),
        "aux_depth_r2": torch.randn(B, 1, H // 4, W // 4, generator=g),
    }
    return {k: v.requires_grad_(requires_grad) for k, v in out.items()}


def _targets():
    a = torch.zeros(2, H, W, dtype=torch.bool)
    a[0, 2:14, 4:20] = True
    a[1, 16:30, 30:60] = True
    b = torch.zeros(1, H, W, dtype=torch.bool)
    b[0, 8:24, 8:40] = True
    return [a, b]


def test_focal_loss_matches_the_retinanet_formula():
    x = torch.tensor([-2.0, 0.3, 1.5, -0.1])
    t = torch.tensor([0.0, 1.0, 1.0, 0.0])
    p = x.sigmoid()
    want = -(0.25 * t * (1 - p) ** 2 * torch.log(p) + 0.75 * (1 - t) * p ** 2 * torch.log(1 - p)).sum()
    assert sigmoid_focal_loss(x, t).item() == pytest.approx(want.item(), rel=1e-5)


def test_dice_loss_and_iou():
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    good = torch.tensor([[20.0, 20.0, -20.0, -20.0]])
    bad = -good
    assert dice_loss(good, t).item() == pytest.approx(0.0, abs=1e-4)
    assert dice_loss(bad, t).item() == pytest.approx(1.0, abs=1e-4)
    # binarized at sigmoid >= 0.4: logits 0 count as foreground (0.5), -1 does not (0.27)
    assert mask_iou(torch.tensor([[0.0, -1.0, 0.0, -5.0]]), t).item() == pytest.approx(1 / 3, rel=1e-4)


def test_union_saliency_target_is_the_union_at_quarter_scale():
    target = union_saliency_target(_targets(), (H, W))
    assert target.shape == (2, 1, H // 4, W // 4)
    union0 = _targets()[0].any(0).float()[None, None]
    assert torch.allclose(target[0:1], F.interpolate(union0, scale_factor=0.25, mode="bilinear"))
    assert target.min() >= 0 and target.max() <= 1


def test_terms_are_weighted_finite_positive_and_differentiable():
    crit = CalibNetCriterion(LossConfig())
    out = _outputs()
    losses = crit(out, _targets(), (H, W))
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice", "loss_objectness",
                           "loss_t3", "loss_d3", "loss_r2", "loss_d2"}
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v) and v.item() > 0, k
    # the weights are applied: an all-zero config weight removes its term
    half = CalibNetCriterion(LossConfig(mask_pixel_weight=0.0, aux_d2_weight=0.4))(out, _targets(), (H, W))
    assert half["loss_mask"].item() == 0.0
    assert half["loss_d2"].item() == pytest.approx(2 * losses["loss_d2"].item(), rel=1e-6)
    CalibNetCriterion.total(losses).backward()
    for k in ("pred_logits", "pred_scores", "pred_masks", "aux_rgb_t3", "aux_depth_r2"):
        assert out[k].grad is not None and out[k].grad.abs().sum() > 0, k


def test_unweighted_terms_equal_direct_computation():
    ones = LossConfig(class_weight=1, mask_pixel_weight=1, mask_dice_weight=1, objectness_weight=1,
                      aux_t3_weight=1, aux_d3_weight=1, aux_r2_weight=1, aux_d2_weight=1)
    crit = CalibNetCriterion(ones)
    out = _outputs(requires_grad=False)
    tg = _targets()
    losses = crit(out, tg, (H, W))
    small = [F.interpolate(t[:, None].float(), size=(H // 2, W // 2), mode="bilinear")[:, 0] for t in tg]
    idx = crit.matcher(out["pred_logits"], out["pred_masks"], small)
    src = torch.cat([out["pred_masks"][b, i] for b, (i, _) in enumerate(idx)]).flatten(1)
    tgt = torch.cat([small[b][j] for b, (_, j) in enumerate(idx)]).flatten(1)
    obj = torch.cat([out["pred_scores"][b, i, 0] for b, (i, _) in enumerate(idx)])
    labels = torch.zeros_like(out["pred_logits"])
    for b, (i, _) in enumerate(idx):
        labels[b, i] = 1
    n = 3.0  # instances in the batch
    assert losses["loss_ce"].item() == pytest.approx(sigmoid_focal_loss(out["pred_logits"], labels).item() / n,
                                                     rel=1e-5)
    assert losses["loss_mask"].item() == pytest.approx(F.binary_cross_entropy_with_logits(src, tgt).item(), rel=1e-5)
    assert losses["loss_dice"].item() == pytest.approx(dice_loss(src, tgt).item() / n, rel=1e-5)
    assert losses["loss_objectness"].item() == pytest.approx(
        F.binary_cross_entropy_with_logits(obj, mask_iou(src, tgt)).item(), rel=1e-5)
    aux_t = union_saliency_target(tg, (H, W))
    up = F.interpolate(out["aux_rgb_t3"], scale_factor=2.0, mode="bilinear")
    assert losses["loss_t3"].item() == pytest.approx(F.binary_cross_entropy_with_logits(up, aux_t).item(), rel=1e-5)
    assert losses["loss_r2"].item() == pytest.approx(
        F.binary_cross_entropy_with_logits(out["aux_rgb_r2"], aux_t).item(), rel=1e-5)


def test_good_predictions_cost_less_than_bad_ones():
    crit = CalibNetCriterion()
    tg = _targets()
    good = _outputs(requires_grad=False)
    bad = _outputs(requires_grad=False)
    for b, t in enumerate(tg):
        small = F.interpolate(t[:, None].float(), size=(H // 2, W // 2), mode="bilinear")[:, 0]
        good["pred_masks"][b] = -10.0
        good["pred_masks"][b, : len(t)] = small * 20 - 10
        good["pred_logits"][b] = -5.0
        good["pred_logits"][b, : len(t)] = 5.0
    for name in ("loss_ce", "loss_mask", "loss_dice"):
        assert crit(good, tg, (H, W))[name] < crit(bad, tg, (H, W))[name], name


def test_images_without_instances():
    crit = CalibNetCriterion()
    out = _outputs()
    empty = [torch.zeros(0, H, W, dtype=torch.bool), torch.zeros(0, H, W, dtype=torch.bool)]
    losses = crit(out, empty, (H, W))
    assert losses["loss_mask"].item() == 0 and losses["loss_dice"].item() == 0
    assert losses["loss_objectness"].item() == 0
    assert losses["loss_ce"].item() > 0  # every kernel is pushed towards background
    CalibNetCriterion.total(losses).backward()
    assert out["pred_logits"].grad.abs().sum() > 0
    # one empty image next to one with instances
    mixed = crit(_outputs(), [_targets()[0], empty[0]], (H, W))
    assert all(torch.isfinite(v) for v in mixed.values())


def test_targets_smaller_than_input_are_padded():
    crit = CalibNetCriterion()
    out = _outputs(requires_grad=False)
    tg = _targets()
    cropped = [t[:, :H, :48] for t in tg]  # valid width 48 of a 64-wide padded input
    padded = [torch.nn.functional.pad(t, (0, 16)) for t in cropped]
    a, b = crit(out, cropped, (H, W)), crit(out, padded, (H, W))
    assert all(a[k].item() == pytest.approx(b[k].item(), rel=1e-6) for k in a)
    with pytest.raises(ValueError, match="larger than the network input"):
        crit(out, [torch.zeros(1, H + 8, W, dtype=torch.bool)] * 2, (H, W))
