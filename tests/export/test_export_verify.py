"""verify_onnx reports (both flavours, failures detected) and the FP16 readiness check."""

from __future__ import annotations

import copy
import json
import re

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from calibnet.export import export_onnx, fp16_readiness, verify_onnx  # noqa: E402
from calibnet.export.fp16_check import FP16_MAX, onnx_scope  # noqa: E402
from calibnet.runtime.core.feeds import random_feeds  # noqa: E402


@pytest.fixture(scope="module")
def trt_file(r18, tmp_path_factory):
    return export_onnx(r18, tmp_path_factory.mktemp("v") / "t.onnx", flavor="tensorrt", height=64, width=96,
                       simplify=False)


@pytest.mark.slow
def test_verify_passes_for_the_exported_model_and_writes_json(r18, trt_file, tmp_path):
    report = verify_onnx(trt_file, r18)
    assert report.passed and report.flavor == "tensorrt"
    names = [(c.name, c.metric) for c in report.checks]
    assert ("pred_masks", "binary_agreement") in names and ("pred_logits", "max_abs_diff") in names
    data = json.loads(report.save(tmp_path / "r.json").read_text())
    assert data["passed"] and data["input_shape"] == [1, 3, 64, 96]
    assert "PASSED" in report.table() and "pred_masks" in report.table()


@pytest.mark.slow
def test_verify_detects_a_model_that_differs(r18, trt_file):
    other = copy.deepcopy(r18)
    with torch.no_grad():
        other.decoder.inst_branch.score_linear.bias += 0.5
    report = verify_onnx(trt_file, other, random_feeds(1, 64, 96, (50, 80), seed=2))
    failed = {c.name for c in report.checks if not c.passed}
    assert not report.passed and "pred_logits" in failed and "pred_masks" not in failed
    assert "FAIL" in report.table()


@pytest.mark.slow
def test_fp16_readiness_reports_drift_and_names_onnx_nodes(r18, trt_file, tmp_path):
    report = fp16_readiness(r18, random_feeds(1, 64, 96), out_path=tmp_path / "f.json")
    assert json.loads((tmp_path / "f.json").read_text())["format"] == "calibnet-fp16-readiness/1"
    out = report["outputs"]
    assert 0 < out["pred_masks"]["max_abs_diff"] < 1 and out["pred_masks"]["binary_agreement"] > 0.99
    nodes = [n.name for n in onnx.load(str(trt_file)).graph.node]
    computing = [entry for entry in report["layers"]  # dropout: identity; eval BatchNorm: folded into its conv
                 if "dropout" not in entry["module"] and entry["type"] not in ("BatchNorm2d", "FrozenBatchNorm2d")]
    assert len(computing) > 100
    for entry in computing:  # every computing leaf module maps to ONNX nodes by its scope
        scope = onnx_scope(r18, entry["module"]) + "/"
        assert any(n.startswith(scope) for n in nodes), entry["module"]


@pytest.mark.slow
def test_fp16_readiness_flags_overflowing_layers(r18):
    from calibnet.engines.fp16 import load_fp32_patterns

    model = copy.deepcopy(r18)
    with torch.no_grad():  # blow up one input projection: its GroupNorm input and the conv output overflow
        model.encoder.input_convs[0][0].weight *= 1e7
    report = fp16_readiness(model, random_feeds(1, 64, 96))
    flagged = {e["module"]: e for e in report["fp32_layers"]}
    assert "encoder.input_convs.0.0" in flagged and str(int(FP16_MAX)) in flagged["encoder.input_convs.0.0"]["reason"]
    assert "normalization input" in flagged["encoder.input_convs.0.1"]["reason"]
    assert not any(m.startswith("backbone.") for m in flagged)  # upstream of the change: untouched
    pattern = flagged["encoder.input_convs.0.1"]["pattern"]
    assert re.search(pattern, "/model/encoder/input_convs.0/input_convs.0.1/GroupNormalization")
    assert pattern in load_fp32_patterns(report["fp32_layers"])
