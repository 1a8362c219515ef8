"""INT8 post-training quantization for OpenVINO (NNCF): the comparator's guard, the metadata of what stayed in
float, and the INT8 IR on the runtime. Tiny R18 at 128x192, two calibration frames."""

from __future__ import annotations

import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")
pytest.importorskip("torch")

from calibnet.cli import export as export_cli  # noqa: E402
from calibnet.export.openvino_int8 import (  # noqa: E402
    DEFAULT_KEEP_FLOAT,
    QuantizationRefused,
    ignored_scope_spec,
    parse_keep_float,
    quantize_int8,
    synthetic_calibration_feeds,
)
from calibnet.runtime import Runtime  # noqa: E402
from calibnet.runtime.backends.openvino import PrecisionMismatch, cpu_capabilities, read_ir_metadata  # noqa: E402

TINY = {"decoder.num_kernels": 10, "encoder.num_layers": 1, "encoder_depth.num_layers": 1,
        "input.min_size_test": 128, "input.max_size_test": 192}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import calibnet
    from calibnet.export import export_onnx

    cfg = calibnet.get_config("r18").replace(**TINY)
    path = export_onnx(calibnet.build_model(cfg, quiet=True), tmp_path_factory.mktemp("int8") / "tiny.onnx",
                       height=128, width=192)
    rt = Runtime.open(path, backend="openvino", precision="f32", cache_dir="")
    feeds = synthetic_calibration_feeds(rt, 3)
    rt.close()
    return path, feeds[:2], feeds[2:]


def test_keep_float_groups_parse_to_an_nncf_scope():
    assert parse_keep_float(None) == DEFAULT_KEEP_FLOAT
    assert parse_keep_float("none") == ()
    assert parse_keep_float("msda, kernel_branch,msda") == ("msda", "kernel_branch")
    with pytest.raises(ValueError, match="unknown keep-float group.*attention.*choose from"):
        parse_keep_float("msda,attention")
    scope = ignored_scope_spec(("msda", "softmax_layernorm"))
    assert scope == {"patterns": [r".*/self_attn/.*"], "types": ["Softmax", "MVN"]}


def test_export_cli_int8_usage_errors(capsys):
    assert export_cli.main(["--onnx", "m.onnx", "--calib-synthetic", "4"]) == 2
    assert "need --int8" in capsys.readouterr().err
    assert export_cli.main(["--onnx", "m.onnx", "--int8", "m_int8.onnx"]) == 2
    assert "give an XML path" in capsys.readouterr().err
    assert export_cli.main(["--onnx", "m.onnx", "--int8", "q.xml", "--int8-keep-float", "bogus"]) == 2
    assert "unknown keep-float group" in capsys.readouterr().err


@pytest.mark.slow
def test_int8_below_the_threshold_is_refused_then_forced(tiny, tmp_path):
    path, calib, check = tiny
    out = tmp_path / "q.xml"
    with pytest.raises(QuantizationRefused) as err:  # no model reaches 101% agreement
        quantize_int8(path, out, calib, check, keep_float=("msda",), min_mask_agreement=1.01)
    msg = str(err.value)
    # the masks disagree: the mask branch is the first suspect still quantized
    assert "--int8-keep-float msda,mask_branch " in msg and "--force" in msg and "binary_agreement" in msg
    assert not out.exists() and not out.with_suffix(".bin").exists()

    res = quantize_int8(path, out, calib, check, keep_float=("msda",), min_mask_agreement=1.01, force=True,
                        calibration_source="2 synthetic scenes")
    assert res.forced and not res.passed and out.with_suffix(".bin").is_file()
    meta = read_ir_metadata(out)
    assert meta.precision == "int8"
    info = meta.extra["int8"]
    assert info["forced"] is True and info["keep_float"] == ["msda"]
    assert info["ignored_scope"]["patterns"] == [r".*/self_attn/.*"]
    assert info["comparison"]["precision"] == "int8" and info["comparison"]["passed"] is False
    assert info["calibration"]["frames"] == 2 and info["openvino"] and info["nncf"]

    rt = Runtime.open(out)  # .xml -> openvino, auto -> int8
    assert rt.backend.precision == "int8" and "INT8" in rt.backend.precision_reason
    # the float parts run in BF16 where the CPU has native BF16 (FP32 elsewhere), and the guard measured that
    islands = "bf16" if "BF16" in cpu_capabilities() else "f32"
    assert rt.backend.config["INFERENCE_PRECISION_HINT"] == islands == info["float_precision"]
    assert f"float parts run in {dict(bf16='BF16', f32='FP32')[islands]}" in rt.backend.precision_reason
    from calibnet.data.synthetic import make_scene

    s = make_scene(seed=7, height=192, width=288)
    assert rt.predict(s.rgb, s.depth).masks.shape[1:] == (192, 288)
    rt.close()
    with pytest.raises(PrecisionMismatch, match="INT8-quantized"):
        Runtime.open(out, precision="f32")


def test_check_bf16_writes_the_comparator_report(tiny):
    import json

    from calibnet.export.api import _bf16_check
    from calibnet.runtime.backends.openvino import cpu_capabilities

    path, _, _ = tiny
    step = _bf16_check(path, 1, say=lambda _: None)
    if "BF16" not in cpu_capabilities():
        assert step.status == "unavailable" and "BF16" in step.message
        return
    doc = json.loads((path.parent / (path.name + ".bf16.json")).read_text())
    assert doc["precision"] == "bf16" and "pred_masks" in doc["outputs"]
    assert step.status == ("done" if doc["passed"] else "failed")


@pytest.mark.slow
def test_int8_splits_rows(tiny, tmp_path):
    from calibnet.benchmarks.int8_splits import run_splits

    path, _, _ = tiny
    doc = run_splits(path, ["none", "msda:transformer"], calib=2, iters=1, threads=1, reference_npz=None,
                     workdir=tmp_path, say=lambda _: None)
    rows = doc["rows"]
    assert {"onnxruntime", "openvino-f32", "int8[none]", "int8[msda:transformer]"} <= set(rows)
    assert rows["int8[msda:transformer]"]["keep_float"] == ["msda"] and rows["int8[msda:transformer]"]["transformer"]
    assert rows["openvino-f32"]["mask_agreement"] > 0.999 and rows["onnxruntime"]["speedup_vs_onnxruntime"] == 1.0
    assert all(len(r["times_ms"]) == 1 and r["median_ms"] > 0 for r in rows.values())
