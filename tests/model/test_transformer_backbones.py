"""Swin-T, PVTv2-B2-Li and P2T-Large (issue 13), fast lane: the export-safe pieces against the rules of the
official code, the official state-dict manifests, and a reduced-depth model per variant exported with
dynamic H/W and batch that matches eager PyTorch at sizes other than the export size.

The full-size parity with the official reference outputs is in test_transformer_reference.py (slow)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import calibnet  # noqa: E402
from calibnet.modeling.swin import relative_position_index, shifted_window_mask, window_partition  # noqa: E402
from calibnet.modeling.vit_layers import adaptive_avg_pool2d, adaptive_pool_matrix, round_div  # noqa: E402

VARIANTS = {
    "swint": "CalibNet_SwinT_50e_50q_320size.yaml",
    "pvt": "CalibNet_PVT_50e_50q_320size.yaml",
    "p2t": "CalibNet_P2T_large_50e_50q_320size.yaml",
}


# ---------------------------------------------------------------------- the export-safe pieces


def test_round_div_is_python_round_half_even_for_traced_sizes():
    ratios = sorted({r for rs in calibnet.modeling.p2t.P2T_POOL_RATIOS for r in rs})
    n = torch.arange(0, 400)
    for r in ratios:
        want = [round(int(v) / r) for v in n]
        assert round_div(n, r).tolist() == want, r
        assert [round_div(int(v), r) for v in n] == want
    assert round_div(torch.tensor(10), 4).item() == 2 and round_div(torch.tensor(30), 4).item() == 8  # 2.5, 7.5


@pytest.mark.parametrize("size,out", [(80, 7), (40, 7), (20, 7), (10, 7), (7, 7), (5, 7), (13, 5), (120, 8),
                                      (15, 2), (1, 1), (9, 4)])
def test_adaptive_pool_matrix_has_pytorch_bins(size, out):
    x = torch.randn(2, 3, size, size + 3, dtype=torch.float64)
    want = F.adaptive_avg_pool2d(x, (out, out + 1))
    mh = adaptive_pool_matrix(size, out, x)
    mw = adaptive_pool_matrix(size + 3, out + 1, x)
    got = mh @ x @ mw.T
    assert torch.allclose(got, want, atol=1e-12, rtol=0)


def test_traced_adaptive_pool_follows_the_input_size():
    """Traced once at 80x120, the pooling (fixed 7x7 as PVTv2-Li, or round(H/r) as P2T) is exact at
    other sizes: no size of the trace is frozen into the graph."""
    def pvt(x):
        return adaptive_avg_pool2d(x, 7, 7)

    def p2t(x):
        return adaptive_avg_pool2d(x, round_div(x.shape[2], 20), round_div(x.shape[3], 16))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = {f: torch.jit.trace(f, torch.randn(1, 4, 80, 120)) for f in (pvt, p2t)}
    for H, W in ((80, 120), (120, 80), (40, 60), (10, 15), (72, 168)):
        x = torch.randn(1, 4, H, W)
        assert torch.allclose(traced[pvt](x), F.adaptive_avg_pool2d(x, 7), atol=1e-5)
        want = F.adaptive_avg_pool2d(x, (round(H / 20), round(W / 16)))
        got = traced[p2t](x)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)


def _official_rule_mask(Hp, Wp, ws, shift):
    """The official construction: label 3x3 slices of a zero map in Python loops, then pairwise compare."""
    img = torch.zeros((1, Hp, Wp, 1))
    cnt = 0
    for h in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for w in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, h, w, :] = cnt
            cnt += 1
    win = window_partition(img, ws).reshape(-1, ws * ws)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


@pytest.mark.parametrize("hp,wp", [(84, 126), (42, 63), (21, 35), (14, 14), (7, 7), (7, 21), (56, 28)])
def test_shifted_window_mask_equals_the_official_rule(hp, wp):
    assert torch.equal(shifted_window_mask(hp, wp, 7, 3, torch.device("cpu")), _official_rule_mask(hp, wp, 7, 3))


def test_shifted_window_mask_traced_follows_the_size():
    def f(x):
        return shifted_window_mask(x.shape[1], x.shape[2], 7, 3, x.device)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(f, torch.zeros(1, 84, 126))
    for hp, wp in ((42, 63), (126, 84), (14, 7)):
        assert torch.equal(traced(torch.zeros(1, hp, wp)), _official_rule_mask(hp, wp, 7, 3))


def test_relative_position_index_pairs_offsets():
    idx = relative_position_index(7)
    assert idx.shape == (49, 49) and idx.dtype == torch.int64
    # the same offset always maps to the same table row, distinct offsets to distinct rows
    rows, cols = np.divmod(np.arange(49), 7)
    offsets = {(int(rows[i] - rows[j]), int(cols[i] - cols[j])): int(idx[i, j]) for i in range(49) for j in range(49)}
    assert len(offsets) == len(set(offsets.values())) == 13 * 13
    assert offsets[(0, 0)] == 6 * 13 + 6 and int(idx.min()) == 0 and int(idx.max()) == 168


# ---------------------------------------------------------------------- official YAMLs and manifests


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_official_yaml_state_dict_and_params_equal_manifest(official_dir, variant):
    """Built from the official YAML (on the meta device: shapes only), the state dict has the official
    names, order, shapes and dtypes, and the parameter counts are exact, per top-level module too."""
    manifest = json.loads((official_dir / f"manifest_{variant}.json").read_text())
    cfg = calibnet.CalibNetConfig.from_yaml(official_dir / "configs" / VARIANTS[variant])
    preset = calibnet.get_config(variant)
    preset.source = cfg.source
    assert preset == cfg  # the preset is the official YAML
    with torch.device("meta"):
        model = calibnet.CalibNet(cfg)
    got = [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()]
    assert got == [(e["name"], e["shape"], e["dtype"]) for e in manifest["entries"]]
    counts = calibnet.count_parameters(model)
    assert counts.total == manifest["params"]["total"]
    assert counts.without_aux == manifest["params"]["without_aux_heads"]
    assert counts.by_module == manifest["params"]["by_module"]


# ---------------------------------------------------------------------- reduced-depth dynamic export


def _reduced_backbone(variant: str):
    """A small backbone of each family with every trap of the full one: Swin with shifted blocks and
    padding to the window at every stage, PVTv2-Li's 7x7 pooling, P2T's round-half-even pyramid pooling."""
    from calibnet.modeling.p2t import PyramidPoolingTransformer
    from calibnet.modeling.pvt_v2 import PyramidVisionTransformerV2
    from calibnet.modeling.swin import SwinTransformer

    torch.manual_seed(0)
    if variant == "swint":
        m = SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
    elif variant == "pvt":
        m = PyramidVisionTransformerV2(embed_dims=(16, 32, 40, 64), depths=(1, 1, 2, 1), linear=True)
    else:
        m = PyramidPoolingTransformer(embed_dims=(16, 32, 40, 64), depths=(1, 1, 2, 1), num_classes=10)
    with torch.no_grad():  # random relative-position lookups (the default buffer is the real index)
        for name, p in m.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_()
    return m.eval()


class _Outputs(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        out = self.backbone(x)
        return tuple(out[k] for k in ("res2", "res3", "res4", "res5"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reduced_backbone_dynamic_onnx_matches_eager_at_other_sizes(variant, tmp_path):
    """Exported once at 96x128 (batch 1) with dynamic batch/H/W, ONNX Runtime equals eager PyTorch at
    portrait, wide and larger sizes and at batch 2: the traced graph froze no size."""
    ort = pytest.importorskip("onnxruntime")
    model = _Outputs(_reduced_backbone(variant)).eval()
    path = tmp_path / f"{variant}.onnx"
    names = ["res2", "res3", "res4", "res5"]
    axes = {"x": {0: "b", 2: "h", 3: "w"}, **{n: {0: "b", 2: f"{n}h", 3: f"{n}w"} for n in names}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 96, 128),), str(path), input_names=["x"], output_names=names,
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for B, H, W in ((2, 160, 96), (1, 96, 224), (1, 224, 160)):
        x = torch.randn(B, 3, H, W, generator=g)
        with torch.no_grad():
            want = model(x)
        got = sess.run(None, {"x": x.numpy()})
        for n, a, b in zip(names, got, want, strict=True):
            assert a.shape == tuple(b.shape), (variant, n, (B, H, W))
            err = float(np.abs(a - b.numpy()).max())
            assert err <= 1e-4 * max(1.0, float(b.abs().max())), (variant, n, (B, H, W), err)


@pytest.mark.slow
def test_fp16_readiness_reports_the_backbones_fp32_islands(tmp_path):
    """The readiness check lists every LayerNorm and attention softmax of both Swin backbones as FP32
    islands; their ops are among the engine builder's default islands and their patterns find the nodes
    of the exported graph."""
    onnx = pytest.importorskip("onnx")
    from calibnet.engines.fp16 import DEFAULT_FP32_PATTERNS
    from calibnet.export import export_onnx, fp16_readiness

    cfg = calibnet.get_config("swint").replace(**{
        "swin.embed_dim": 16, "swin.depths": (2, 2, 2, 2), "swin.num_heads": (1, 2, 2, 4),
        "encoder.num_layers": 1, "encoder_depth.num_layers": 1, "decoder.num_kernels": 10})
    torch.manual_seed(0)
    model = calibnet.CalibNet(cfg).eval()
    g = np.random.default_rng(0)
    inputs = {"rgb": (g.random((1, 3, 64, 96)) * 255).astype(np.float32),
              "depth": (g.random((1, 1, 64, 96)) * 255).astype(np.float32),
              "valid_hw": np.array([[64, 96]], dtype=np.int64)}
    report = fp16_readiness(model, inputs)
    islands = {i["module"]: i for i in report["fp32_islands"]}
    for prefix in ("backbone", "backbonedepth"):
        sub = getattr(model, prefix)
        kinds = (torch.nn.LayerNorm, torch.nn.Softmax)
        want = {f"{prefix}.{n}" for n, m in sub.named_modules() if isinstance(m, kinds)}
        assert want and want <= set(islands), sorted(want - set(islands))[:5]
    assert f"op:{islands['backbone.layers.0.blocks.1.attn.softmax']['onnx_op']}" in DEFAULT_FP32_PATTERNS
    assert f"op:{islands['backbone.norm3']['onnx_op']}" in DEFAULT_FP32_PATTERNS
    path = export_onnx(model, tmp_path / "swin_small.onnx", height=64, width=96, min_hw=(64, 64), simplify=False)
    nodes = [(n.name, n.op_type) for n in onnx.load(str(path)).graph.node]
    for name in ("backbone.layers.0.blocks.1.attn.softmax", "backbonedepth.layers.3.blocks.0.norm1", "backbone.norm0"):
        pat = re.compile(islands[name]["pattern"])
        assert any(pat.search(n) and op == islands[name]["onnx_op"] for n, op in nodes), name


# ---------------------------------------------------------------------- benchmark figures


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["swint", "pvt"])
def test_macs_equal_the_official_fvcore_counts(official_dir, variant):
    """fvcore-convention MACs at 320x480 equal the official counts (flops_transformers.json, which leave the
    deformable-attention grid sampler out; calibnet's total includes it, as the official R50 count does)."""
    from calibnet.benchmarks.flops import count_model_macs
    from calibnet.benchmarks.model_stats import OFFICIAL_GMACS

    official = json.loads((official_dir / "flops_transformers.json").read_text())[variant]["320x480"]
    cfg = calibnet.get_config(variant)
    assert OFFICIAL_GMACS[cfg.backbone.name][(320, 480)] == official
    model = calibnet.CalibNet(cfg)
    c = count_model_macs(model, 320, 480)
    assert (c.total - c.msda_sampling) / 1e9 == pytest.approx(official, abs=0.006)


def test_bench_report_names_the_backbone_and_the_official_table():
    from calibnet.benchmarks.model_stats import BACKBONE_TABLE, model_stats
    from calibnet.benchmarks.report import backbone_table_rows, compare_paper_rows

    cfg = calibnet.get_config("swint").replace(**{
        "swin.embed_dim": 16, "swin.depths": (2, 2, 2, 2), "swin.num_heads": (1, 2, 2, 4),
        "encoder.num_layers": 1, "encoder_depth.num_layers": 1, "decoder.num_kernels": 10})
    model = calibnet.CalibNet(cfg)
    stats = model_stats(model, 64, 96, dataset_sizes=False)
    doc = {**stats.to_dict(), "setup": {"cpu": "cpu", "threads": 1, "height": 64, "width": 96},
           "baseline": {"status": "skipped", "fps": None}, "backends": {}}
    assert doc["backbone"] == {"name": "D2SwinTransformer", "label": "Swin-T"} and not stats.paper_model
    table = backbone_table_rows(doc)
    assert [r[0] for r in table[1:]] == [r["backbone"] for r in BACKBONE_TABLE]
    swin = next(r for r in table if r[0] == "Swin-T")
    assert swin[1] == "76.0M" and swin[2] == "60.0" and "this run" in swin[4]
    rows = compare_paper_rows(doc)
    assert rows[1][1] == "76.0M (official code)"  # not the R50 paper figure
    assert rows[3][0].startswith("GMACs (fvcore, no grid sampler)")
