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


def _engine_machine() -> str | None:
    """None where TensorRT can build an engine (TensorRT, a CUDA API and an NVIDIA GPU), else what is missing."""
    from calibnet.runtime.backends import tensorrt_deps
    from calibnet.runtime.backends.cuda_buffers import available_cuda_apis, query_gpu

    if not tensorrt_deps.tensorrt_available():
        return "no TensorRT"
    if not available_cuda_apis() or query_gpu() is None:
        return "TensorRT without a CUDA API or GPU"
    return None


@pytest.mark.slow
def test_export_cli_tensorrt_topk_verify_fp16_and_engine(tmp_path, capsys):
    """The ONNX, its verification reports and the FP16 readiness report on every machine; the engine: built and
    verified against ONNX Runtime where TensorRT and a GPU are, exit code 3 with the ONNX kept where TensorRT is
    missing."""
    from calibnet.cli.export import main

    out, engine = tmp_path / "r18.onnx", tmp_path / "e.engine"
    missing = _engine_machine()
    rc = main(["--config", "r18", "--onnx", str(out), "--height", "64", "--width", "96", "--flavor", "tensorrt",
               "--topk", "5", "--dynamic", "--min-hw", "32x32", "--max-hw", "128x128", "--no-simplify",
               "--verify", "--verify-size", "96x64", "--check-fp16", "--engine", str(engine), "--fp16"])
    captured = capsys.readouterr()
    assert "MEANINGLESS" in captured.err and out.is_file()
    if missing is None:
        assert rc == 0 and engine.is_file() and (tmp_path / "e.engine.json").is_file(), captured.err[-2000:]
        assert json.loads((tmp_path / "e.engine.verify.json").read_text())["passed"]
    elif missing == "no TensorRT":
        assert rc == 3 and "engine: unavailable" in captured.err and not engine.exists()
    for name in ("r18.onnx.verify.json", "r18.onnx.verify_96x64.json"):
        report = json.loads((tmp_path / name).read_text())
        assert report["passed"] and report["flavor"] == "tensorrt"
        assert {c["name"] for c in report["checks"]} == {"scores", "masks", "depth_trust", "keep_index"}
    fp16 = json.loads((tmp_path / "r18.onnx.fp16.json").read_text())
    assert fp16["format"] == "calibnet-fp16-readiness/1" and "fp32_layers" in fp16
    if missing not in (None, "no TensorRT"):
        pytest.skip(f"{missing}: the engine part of this test needs an NVIDIA GPU (exit code {rc})")


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
    """``--engine --verify``: calibnet.engines.verify.verify_engine itself runs the built engine and ONNX Runtime
    (the plugin graph with its reference body) on the same random inputs, compares them with the one comparator
    and writes the report; the exit code follows the comparison. Only TensorRT is replaced, on any machine: the
    "engine" the stand-in builder writes is the runnable graph itself with a sidecar, and the stand-in backend runs
    it on ONNX Runtime (adding a drift to one output for the failing case)."""
    import calibnet.engines.verify as engine_verify
    import calibnet.export.api
    from calibnet.cli.export import main
    from calibnet.export.msda_onnx import load_runnable
    from calibnet.runtime.core.contract import read_onnx_metadata
    from calibnet.runtime.core.sidecar import EngineSidecar, GpuInfo, read_sidecar, write_sidecar

    def build(onnx_path, engine_path, fp16=True, **kw):
        Path(engine_path).write_bytes(load_runnable(onnx_path).SerializeToString())
        meta = read_onnx_metadata(onnx_path).to_dict()
        write_sidecar(engine_path, EngineSidecar("0" * 64, "stand-in", GpuInfo("none", "0.0"), "fp16",
                                                 "builder-flag-fp16", [], model=meta))
        return Path(engine_path)

    class OrtEngine:  # the TensorRT backend's interface, as verify_engine uses it
        def __init__(self, engine_path, use_cuda_graph=False):
            self.sidecar = read_sidecar(engine_path)
            self.metadata = self.sidecar.metadata
            self.sess = ort.InferenceSession(Path(engine_path).read_bytes(), providers=["CPUExecutionProvider"])
            self.runs = 0

        def run(self, feeds):
            self.runs += 1
            out = dict(zip([o.name for o in self.sess.get_outputs()], self.sess.run(None, feeds)))
            if engine_drifts:
                out["pred_logits"] = out["pred_logits"] + 1.0
            return out

        def close(self):
            pass

    monkeypatch.setattr(calibnet.export.api, "build_engine", build)
    monkeypatch.setattr(engine_verify, "TensorRTBackend", OrtEngine)
    engine = tmp_path / "e.engine"
    rc = main(["--config", "r18", "--onnx", str(tmp_path / "t.onnx"), "--height", "64", "--width", "96",
               "--flavor", "tensorrt", "--no-simplify", "--verify", "--engine", str(engine), "--fp16"])
    out = capsys.readouterr()
    report = json.loads((tmp_path / "e.engine.verify.json").read_text())
    assert len(report["samples"]) == 3 and report["sidecar"]["tensorrt_version"] == "stand-in"
    logits = [s["outputs"]["pred_logits"] for s in report["samples"]]
    assert all(o["passed"] is (not engine_drifts) for o in logits), logits
    assert all(o["max_abs"] == pytest.approx(1.0 if engine_drifts else 0.0, abs=1e-5) for o in logits)
    assert report["passed"] is (not engine_drifts) and report["timing_host_ms"]["iters"] == 50
    assert rc == (1 if engine_drifts else 0)
    assert ("engine verification: " + ("FAIL" if engine_drifts else "PASS")) in out.err + out.out
