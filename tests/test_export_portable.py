"""Portable ONNX export (plain ONNX, MSDA as GridSample) run on ONNX Runtime CPU vs the references."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import padded_network_input  # noqa: E402

import calibnet  # noqa: E402
from calibnet.export import export_onnx  # noqa: E402
from calibnet.runtime.metadata import ModelMetadata  # noqa: E402


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def r50_onnx(r50_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    return {
        (320, 480): export_onnx(r50_model, d / "r50_320x480.onnx", height=320, width=480),
        (384, 512): export_onnx(r50_model, d / "r50_384x512.onnx", height=384, width=512),
    }


@pytest.mark.parametrize("ref_name", ["ref_A_320x480.npz", "ref_B_375x500.npz"])
def test_portable_onnx_reproduces_official_reference(r50_onnx, official_dir, ref_name):
    ref = np.load(official_dir / ref_name)
    rgb, depth, (h, w) = padded_network_input(ref["net_rgb_u8"], ref["net_depth_u8"])
    sess = _session(r50_onnx[tuple(rgb.shape[-2:])])
    outs = sess.run(None, {"rgb": rgb.numpy(), "depth": depth.numpy(),
                           "valid_hw": np.array([[h, w]], dtype=np.int64)})
    got = dict(zip([o.name for o in sess.get_outputs()], outs))
    assert np.abs(got["pred_logits"] - ref["pred_logits"]).max() <= 1e-3
    assert np.abs(got["pred_scores"] - ref["pred_scores"]).max() <= 1e-3
    assert np.abs(got["pred_masks"] - ref["pred_masks"]).max() <= 1e-2
    assert ((got["pred_masks"] > 0) == (ref["pred_masks"] > 0)).mean() >= 0.999
    assert got["depth_trust"].shape == (1, 3)


def test_portable_graph_contents_and_metadata(r50_onnx):
    proto = onnx.load(str(r50_onnx[(320, 480)]), load_external_data=False)
    ops = [n.op_type for n in proto.graph.node]
    assert "GridSample" in ops
    assert not any(n.domain not in ("", "ai.onnx") for n in proto.graph.node)
    assert [i.name for i in proto.graph.input] == ["rgb", "depth", "valid_hw"]
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    assert (meta.flavor, meta.height, meta.width, meta.num_kernels) == ("portable", 320, 480, 50)
    assert (meta.cls_threshold, meta.mask_threshold) == (0.005, 0.45)


def test_small_model_matches_torch_with_padding(tmp_path):
    model = calibnet.build_model("r18", quiet=True)
    path = export_onnx(model, tmp_path / "r18.onnx", height=64, width=96)
    g = np.random.default_rng(0)
    rgb = (g.random((1, 3, 64, 96)) * 255).astype(np.float32)
    depth = (g.random((1, 1, 64, 96)) * 255).astype(np.float32)
    valid = np.array([[50, 70]], dtype=np.int64)
    outs = _session(path).run(None, {"rgb": rgb, "depth": depth, "valid_hw": valid})
    with torch.no_grad():
        ref = model(torch.from_numpy(rgb), torch.from_numpy(depth), image_sizes=torch.from_numpy(valid))
    for got, key in zip(outs, ("pred_logits", "pred_scores", "pred_masks", "depth_trust")):
        assert np.abs(got - ref[key].numpy()).max() <= 1e-3, key


def test_bad_export_arguments_are_clear(tmp_path):
    model = calibnet.build_model("r18", quiet=True)
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(model, tmp_path / "x.onnx", height=70, width=96)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "x.onnx", height=64, width=96, opset=20)
    with pytest.raises(NotImplementedError, match="portable"):
        export_onnx(model, tmp_path / "x.onnx", flavor="tensorrt")


def test_export_cli_writes_and_verifies(tmp_path, capsys):
    from calibnet.export.cli import main

    out = tmp_path / "r18.onnx"
    assert main(["--config", "r18", "--onnx", str(out), "--height", "64", "--width", "96", "--verify"]) == 0
    report = __import__("json").loads((tmp_path / "r18.onnx.verify.json").read_text())
    assert all(r["pass"] for r in report.values())
    assert "MEANINGLESS" in capsys.readouterr().err
    assert main(["--config", "r18", "--onnx", str(out), "--height", "70"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["--config", "nope", "--onnx", str(out)]) == 2
