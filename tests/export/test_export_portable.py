"""Small-model export checks: dynamic shapes and batch for both flavours, simplification, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from calibnet.export import export_onnx  # noqa: E402
from calibnet.export.msda_onnx import attach_reference_function  # noqa: E402
from calibnet.runtime.core.contract import ModelMetadata  # noqa: E402

KEYS = ("pred_logits", "pred_scores", "pred_masks", "depth_trust")


@pytest.fixture(scope="module")
def dynamic_files(r18, tmp_path_factory):
    d = tmp_path_factory.mktemp("r18_dyn")
    kw = {"height": 64, "width": 96, "dynamic": True, "min_hw": (32, 32), "max_hw": (256, 256)}
    return {"portable": export_onnx(r18, d / "p.onnx", flavor="portable", **kw),
            "tensorrt": export_onnx(r18, d / "t.onnx", flavor="tensorrt", simplify=False, **kw)}


def _session(path):
    proto = attach_reference_function(onnx.load(str(path)))
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["portable", "tensorrt"])
def test_dynamic_export_matches_torch_at_other_sizes_and_batches(r18, dynamic_files, flavor):
    sess = _session(dynamic_files[flavor])
    g = np.random.default_rng(1)
    for (B, H, W), valid in [((1, 64, 96), [[50, 70]]), ((2, 128, 64), [[128, 64], [100, 40]]),
                             ((1, 64, 224), [[64, 200]])]:
        rgb = (g.random((B, 3, H, W)) * 255).astype(np.float32)
        depth = (g.random((B, 1, H, W)) * 255).astype(np.float32)
        valid = np.array(valid, dtype=np.int64)
        outs = sess.run(None, {"rgb": rgb, "depth": depth, "valid_hw": valid})
        with torch.no_grad():
            ref = r18(torch.from_numpy(rgb), torch.from_numpy(depth), image_sizes=torch.from_numpy(valid))
        assert outs[2].shape == (B, 50, H // 2, W // 2)
        for got, key in zip(outs, KEYS):
            assert np.abs(got - ref[key].numpy()).max() <= 1e-3, (key, B, H, W)


@pytest.mark.slow
def test_static_export_is_static_and_simplified(r18, tmp_path):
    full = export_onnx(r18, tmp_path / "s.onnx", height=64, width=96, simplify=False)
    slim = export_onnx(r18, tmp_path / "slim.onnx", height=64, width=96)
    p_full, p_slim = onnx.load(str(full)), onnx.load(str(slim))
    assert len(p_slim.graph.node) < len(p_full.graph.node)
    dims = [d.dim_value for d in p_slim.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 96]
    meta = ModelMetadata.from_props({p.key: p.value for p in p_slim.metadata_props})
    assert (meta.flavor, meta.dynamic_hw, meta.min_hw, meta.max_hw) == ("portable", False, (64, 96), (64, 96))
    assert meta.output_names == KEYS
    g = np.random.default_rng(0)
    feeds = {"rgb": (g.random((1, 3, 64, 96)) * 255).astype(np.float32),
             "depth": (g.random((1, 1, 64, 96)) * 255).astype(np.float32),
             "valid_hw": np.array([[60, 90]], dtype=np.int64)}
    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds) for p in (full, slim))
    for x, y in zip(a, b):
        assert np.abs(x - y).max() <= 1e-4


def test_bad_export_arguments_are_clear(r18, tmp_path):
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(r18, tmp_path / "x.onnx", height=70, width=96)
    with pytest.raises(ValueError, match="batch"):
        export_onnx(r18, tmp_path / "x.onnx", height=64, width=96, batch=0)


@pytest.mark.slow
def test_export_cli_tensorrt_topk_verify_fp16_and_engine(tmp_path, capsys):
    from calibnet.cli.export import main

    out = tmp_path / "r18.onnx"
    rc = main(["--config", "r18", "--onnx", str(out), "--height", "64", "--width", "96", "--flavor", "tensorrt",
               "--topk", "5", "--dynamic", "--min-hw", "32x32", "--max-hw", "128x128", "--no-simplify",
               "--verify", "--verify-size", "96x64", "--check-fp16", "--engine", str(tmp_path / "e.engine"),
               "--fp16"])
    err = capsys.readouterr().err
    assert "MEANINGLESS" in err
    assert rc == 3 and "engine: unavailable" in err and out.is_file()  # no TensorRT here: ONNX written
    for name in ("r18.onnx.verify.json", "r18.onnx.verify_96x64.json"):
        report = json.loads((tmp_path / name).read_text())
        assert report["passed"] and report["flavor"] == "tensorrt"
        assert {c["name"] for c in report["checks"]} == {"scores", "masks", "depth_trust", "keep_index"}
    fp16 = json.loads((tmp_path / "r18.onnx.fp16.json").read_text())
    assert fp16["format"] == "calibnet-fp16-readiness/1" and "fp32_layers" in fp16


def test_export_cli_user_errors(tmp_path, capsys):
    from calibnet.cli.export import main

    out = tmp_path / "r18.onnx"
    assert main(["--config", "r18", "--onnx", str(out), "--height", "70"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
    assert main(["--config", "nope", "--onnx", str(out)]) == 2
    assert main(["--config", "r18", "--onnx", str(out), "--weights", str(tmp_path / "missing.pth")]) == 2
    assert main(["--config", "r18", "--onnx", str(out), "--fp16"]) == 2
    assert main(["--config", "r18", "--onnx", str(out), "--min-hw", "big"]) == 2
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("engine_drifts", [False, True])
def test_export_cli_verifies_the_engine_against_onnxruntime(tmp_path, monkeypatch, capsys, engine_drifts):
    """``--engine --verify``: the built engine is compared with ONNX Runtime running the same (plugin) graph with
    its reference body; the exit code follows the comparison. TensorRT is replaced by a stand-in that runs the
    graph on ONNX Runtime (with a drift for the failing case), so the wiring is checked on CPU."""
    import calibnet.engines.verify as engine_verify
    import calibnet.export.api
    from calibnet.cli.export import main
    from calibnet.runtime.core.compare import compare_outputs
    from calibnet.runtime.core.feeds import random_feeds

    def fake_build(onnx_path, engine_path, fp16=True, **kw):
        Path(engine_path).write_bytes(b"not a real engine")
        return Path(engine_path)

    def fake_verify(engine_path, onnx_model, report_path=None, **kw):
        assert isinstance(onnx_model, bytes)  # the in-memory graph with the plugin's reference body
        sess = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
        meta = ModelMetadata.from_props(dict(sess.get_modelmeta().custom_metadata_map))
        feeds = random_feeds(meta.batch, meta.height, meta.width)
        names = [o.name for o in sess.get_outputs()]
        ref = dict(zip(names, sess.run(None, feeds)))
        got = {k: v + (1.0 if engine_drifts and k == "pred_logits" else 0.0) for k, v in ref.items()}
        rep = {"samples": [compare_outputs(ref, got, meta, "fp16").to_json()], "timing_host_ms": {}}
        rep["passed"] = rep["samples"][0]["passed"]
        report_path.write_text(json.dumps(rep))
        return rep

    monkeypatch.setattr(calibnet.export.api, "build_engine", fake_build)
    monkeypatch.setattr(engine_verify, "verify_engine", fake_verify)
    engine = tmp_path / "e.engine"
    rc = main(["--config", "r18", "--onnx", str(tmp_path / "t.onnx"), "--height", "64", "--width", "96",
               "--flavor", "tensorrt", "--no-simplify", "--verify", "--engine", str(engine), "--fp16"])
    out = capsys.readouterr()
    report = json.loads((tmp_path / "e.engine.verify.json").read_text())
    assert report["passed"] is (not engine_drifts)
    assert rc == (1 if engine_drifts else 0)
    assert ("engine verification" in out.err + out.out) and ("FAIL" if engine_drifts else "PASS") in out.err + out.out
