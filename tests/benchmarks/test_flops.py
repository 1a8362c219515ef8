"""The MAC counter (fvcore convention): exact counts on hand-checkable modules, and the R50 count against
the official fvcore figure (../shared/official/flops.json) in total and by module."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import calibnet  # noqa: E402
from calibnet.benchmarks.flops import count_macs, count_model_macs  # noqa: E402


def _count(module, *inputs, shape_only=True):
    return count_macs(module, inputs, shape_only=shape_only)


@pytest.mark.parametrize("shape_only", [True, False])
def test_conv_counts_one_mac_per_multiply_add(shape_only):
    conv = nn.Conv2d(6, 8, kernel_size=3, stride=2, padding=1, groups=2, bias=True)
    c = _count(conv, torch.zeros(2, 6, 10, 14), shape_only=shape_only)
    # output 5x7; each output value needs (6/2)*3*3 multiply-adds; bias adds are not counted
    assert c.total == 2 * 8 * 5 * 7 * (3 * 3 * 3)
    assert c.by_operator == {"conv": c.total}


def test_transposed_conv_uses_input_spatial_size():
    up = nn.ConvTranspose2d(4, 6, kernel_size=3, stride=2, padding=1, output_padding=1)
    c = _count(up, torch.zeros(1, 4, 5, 7))
    assert c.total == 4 * 6 * 3 * 3 * 5 * 7  # fvcore: batch x prod(weight) x prod(input spatial)


def test_linear_on_tokens():
    lin = nn.Linear(16, 24)
    c = _count(lin, torch.zeros(3, 10, 16))
    assert c.total == 3 * 10 * 16 * 24
    assert c.by_module[""] == c.total


class _MatMuls(nn.Module):
    def forward(self, a, b, x, y):
        return torch.bmm(a, b), x @ y, torch.einsum("bij,bjk->bik", a, b)


def test_matmul_bmm_einsum():
    a, b = torch.zeros(2, 3, 5), torch.zeros(2, 5, 7)
    x, y = torch.zeros(4, 6), torch.zeros(6, 9)
    c = _count(_MatMuls(), a, b, x, y)
    assert c.total == 2 * (2 * 3 * 5 * 7) + 4 * 6 * 9


def test_norm_and_upsample_rules():
    x = torch.zeros(1, 8, 4, 6)
    assert _count(nn.GroupNorm(4, 8), x).total == x.numel() * 5
    assert _count(nn.GroupNorm(4, 8, affine=False), x).total == x.numel() * 4
    assert _count(nn.LayerNorm(6), x).total == x.numel() * 5
    assert _count(nn.BatchNorm2d(8).eval(), x).total == x.numel() * 2
    assert _count(nn.Upsample(scale_factor=2, mode="bilinear"), x).total == 4 * x.numel() * 4
    assert _count(nn.ReLU(), x).total == 0  # element-wise ops are not counted
    assert "relu" in _count(nn.ReLU(), x).uncounted


def test_grid_sampler_counted_as_four_taps_and_weighted_sum_reported_apart():
    class _Sample(nn.Module):
        def forward(self, v, g):
            return nn.functional.grid_sample(v, g, mode="bilinear", align_corners=False)

    c = _count(_Sample(), torch.zeros(2, 3, 8, 8), torch.zeros(2, 5, 4, 2))
    assert c.msda_sampling == c.total == 4 * (2 * 3 * 5 * 4)
    assert c.msda_uncounted == 2 * 3 * 5 * 4


def test_by_module_includes_descendants_and_restores_hooks():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.Conv2d(4, 5, 1)))
    c = _count(model, torch.zeros(1, 3, 2, 2))
    assert c.by_module["0"] == 3 * 4 * 4
    assert c.by_module["1.0"] == c.by_module["1"] == 4 * 5 * 4
    assert c.total == c.by_module["0"] + c.by_module["1"]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.fixture(scope="module")
def r50_count():
    model = calibnet.build_model("r50", quiet=True)
    return count_model_macs(model, 320, 480)


@pytest.mark.slow
def test_r50_gmacs_match_official_fvcore_count(official_dir, r50_count):
    ref = json.loads((official_dir / "flops.json").read_text())
    assert r50_count.gmacs == pytest.approx(ref["total_G"], rel=0.02)
    ours = r50_count.top_level()
    for name, g in ref["by_module_G"].items():
        name = name.removeprefix("m.")
        if g == 0:
            assert ours.get(name, 0) == 0, name  # training-only heads and the criterion do not run
        else:
            assert ours[name] / 1e9 == pytest.approx(g, rel=0.005), name
    assert r50_count.gflops == pytest.approx(2 * r50_count.gmacs)


@pytest.mark.slow
def test_r50_at_the_16_9_padded_size_matches_the_papers_90_2g(r50_count):
    """A 16:9 frame resizes to 270x480 and pads to 288x480: the count there is the paper's 90.2G (the paper
    averages fvcore counts over padded test images); a 4:3 frame (320x427 -> 320x448) counts more."""
    from calibnet.benchmarks.model_stats import padded_network_size

    assert padded_network_size(720, 1280, 320, 480) == ((270, 480), (288, 480))
    assert padded_network_size(480, 640, 320, 480) == ((320, 427), (320, 448))
    model = calibnet.build_model("r50", quiet=True)
    wide = count_model_macs(model, 288, 480)
    assert wide.gmacs == pytest.approx(90.2, rel=0.005)
    assert wide.total < count_model_macs(model, 320, 448).total < r50_count.total
