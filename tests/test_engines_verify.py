"""Engine verification logic (pure numpy), the engines CLI's user errors, and the FP16 pass on the real
CalibNet graph (once calibnet.export is available)."""

from __future__ import annotations

import numpy as np
import pytest

from calibnet.engines import _deps
from calibnet.engines.cli import main as cli_main
from calibnet.engines.verify import compare_outputs, random_feeds, time_engine
from calibnet.runtime.metadata import ModelMetadata


def _outs(rng, n=5):
    return {"pred_logits": rng.normal(size=(1, n, 1)).astype(np.float32),
            "pred_masks": rng.normal(size=(1, n, 16, 24)).astype(np.float32),
            "depth_trust": rng.uniform(size=(1, 3)).astype(np.float32)}


def test_compare_outputs_pass_and_fail():
    rng = np.random.default_rng(0)
    ref = _outs(rng)
    near = {k: v + np.float32(1e-3) for k, v in ref.items()}
    rep = compare_outputs(ref, near)
    assert rep["passed"] and rep["outputs"]["pred_masks"]["mask_agreement"] > 0.99
    assert rep["outputs"]["pred_logits"]["max_abs"] == pytest.approx(1e-3, rel=1e-2)
    flipped = dict(near, pred_masks=-ref["pred_masks"])
    bad = compare_outputs(ref, flipped)
    assert not bad["passed"] and bad["outputs"]["pred_masks"]["mask_agreement"] < 0.1
    nan = dict(near, depth_trust=np.full_like(ref["depth_trust"], np.nan))
    assert compare_outputs(ref, nan)["outputs"]["depth_trust"]["nonfinite"] == 3
    assert not compare_outputs(ref, nan)["passed"]
    missing = {k: v for k, v in near.items() if k != "pred_logits"}
    assert compare_outputs(ref, missing)["outputs"]["pred_logits"] == {"error": "missing"}
    far = dict(near, pred_logits=ref["pred_logits"] + 1)
    assert not compare_outputs(ref, far)["passed"]
    assert compare_outputs(ref, far, tolerances={"pred_logits": (0, 2)})["passed"]


def test_random_feeds_and_timer():
    f = random_feeds(ModelMetadata(height=64, width=96, batch=2), seed=1)
    assert f["rgb"].shape == (2, 3, 64, 96) and f["depth"].shape == (2, 1, 64, 96)
    assert f["rgb"].dtype == np.float32 and f["rgb"].min() >= 0 and f["rgb"].max() <= 255
    assert (f["valid_hw"] == [[64, 96], [64, 96]]).all()

    class Fake:
        calls = 0

        def run(self, feeds):
            Fake.calls += 1
            return {}

    t = time_engine(Fake(), f, iters=5, warmup=2)
    assert Fake.calls == 7 and t["batch"] == 2 and t["fps"] > 0 and t["min_ms"] <= t["median_ms"] <= t["p90_ms"]


def test_cli_user_errors(tmp_path, capsys):
    assert cli_main(["info", str(tmp_path / "none.engine")]) == 2
    assert "no sidecar" in capsys.readouterr().err
    if not _deps.tensorrt_available():
        assert cli_main(["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.engine")]) == 2
        assert "pip install calibnet[tensorrt]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["build", "--opt-level", "9", "m.onnx"])


def test_cli_fp16_onnx(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], name="sm"),
                           helper.make_node("Relu", ["y"], ["z"], name="r")], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2, 4])])
    src, dst = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert cli_main(["fp16-onnx", str(src), str(dst)]) == 0
    assert '"fp32_nodes": 1' in capsys.readouterr().out
    assert any(n.op_type == "Cast" for n in onnx.load(str(dst)).graph.node)


def _plain_export(model, path, h, w):
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, rgb, depth, valid_hw):
            o = self.m(rgb, depth, image_sizes=valid_hw)
            return o["pred_logits"], o["pred_scores"], o["pred_masks"], o["depth_trust"]

    args = (torch.rand(1, 3, h, w) * 255, torch.rand(1, 1, h, w) * 255, torch.tensor([[h, w]]))
    torch.onnx.export(Wrap(model), args, str(path), opset_version=17, dynamo=False,
                      input_names=["rgb", "depth", "valid_hw"],
                      output_names=["pred_logits", "pred_scores", "pred_masks", "depth_trust"])
    return path


@pytest.mark.slow
def test_fp16_pass_on_real_calibnet_graph(tmp_path):
    """R18 CalibNet at 64x96, portable ONNX: the FP16 graph (FP32 islands) runs in ONNX Runtime and its
    binary masks agree with the FP32 graph on >= 99% of pixels."""
    pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import calibnet
    from calibnet.engines.fp16 import convert_to_fp16

    model = calibnet.build_model("r18", seed=0, quiet=True).eval()
    try:
        from calibnet.export import export_onnx
    except ImportError:  # until calibnet.export lands: a plain TorchScript-exporter graph of the same model
        path = _plain_export(model, tmp_path / "r18.onnx", 64, 96)
    else:
        path = export_onnx(model, tmp_path / "r18.onnx", flavor="portable", height=64, width=96, simplify=False)
    m16, rep = convert_to_fp16(onnx.load(str(path)))
    assert any("LayerNormalization" in n for n in rep.fp32_nodes) and rep.fp16_nodes > 2 * len(rep.fp32_nodes)
    assert any("sampling_offsets" in n for n in rep.fp32_nodes) and any(n.endswith("/Div") for n in rep.fp32_nodes)
    feeds = random_feeds(ModelMetadata(height=64, width=96), seed=0)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref_sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in ref_sess.get_outputs()]
    ref = dict(zip(names, ref_sess.run(None, feeds)))
    got = dict(zip(names, ort.InferenceSession(m16.SerializeToString(), so,
                                               providers=["CPUExecutionProvider"]).run(None, feeds)))
    rep = compare_outputs(ref, got)
    key = "pred_masks" if "pred_masks" in ref else "masks"
    assert rep["outputs"][key]["mask_agreement"] >= 0.99, rep
    assert all(o.get("nonfinite", 0) == 0 for o in rep["outputs"].values())
