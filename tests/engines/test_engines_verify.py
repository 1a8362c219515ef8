"""The one comparator and random feeds (pure numpy, as engine verification uses them), the engine timer, the
engines CLI's user errors, and the FP16 pass on the real CalibNet graph (exported by calibnet.export)."""

from __future__ import annotations

import numpy as np
import pytest

from calibnet.cli.engines import main as cli_main
from calibnet.engines.verify import time_engine
from calibnet.runtime.backends import tensorrt_deps as _deps
from calibnet.runtime.core.compare import Tolerance, compare_outputs
from calibnet.runtime.core.contract import ModelMetadata
from calibnet.runtime.core.feeds import random_feeds

META = ModelMetadata()


def _outs(rng, n=5):
    return {"pred_logits": rng.normal(size=(1, n, 1)).astype(np.float32),
            "pred_masks": 4 * rng.normal(size=(1, n, 16, 24)).astype(np.float32),
            "depth_trust": rng.uniform(size=(1, 3)).astype(np.float32)}


def test_compare_outputs_pass_and_fail():
    rng = np.random.default_rng(0)
    ref = _outs(rng)
    near = {k: v + np.float32(1e-3) for k, v in ref.items()}
    rep = compare_outputs(ref, near, META, "fp16")
    assert rep.passed and rep.outputs["pred_masks"].mask_agreement > 0.99
    assert rep.outputs["pred_logits"].max_abs == pytest.approx(1e-3, rel=1e-2)
    flipped = dict(near, pred_masks=-ref["pred_masks"])
    bad = compare_outputs(ref, flipped, META, "fp16")
    assert not bad.passed and bad.outputs["pred_masks"].mask_agreement < 0.1
    nan = dict(near, depth_trust=np.full_like(ref["depth_trust"], np.nan))
    assert compare_outputs(ref, nan, META, "fp16").outputs["depth_trust"].nonfinite == 3
    assert not compare_outputs(ref, nan, META, "fp16").passed
    missing = {k: v for k, v in near.items() if k != "pred_logits"}
    lost = compare_outputs(ref, missing, META, "fp16").outputs["pred_logits"]
    assert lost.error == "missing" and not lost.passed
    far = dict(near, pred_logits=ref["pred_logits"] + 1)
    assert not compare_outputs(ref, far, META, "fp16").passed
    assert compare_outputs(ref, far, META, "fp16", tolerances={"pred_logits": Tolerance(2)}).passed


def test_one_mask_rule_for_logits_and_probabilities():
    """pred_masks logits and top-k masks probabilities are binarized by the same rule: p > mask_threshold."""
    t = 0.45
    logits = np.array([-0.3, -0.19, 0.0, 2.0], np.float32)  # sigmoid: 0.426, 0.453, 0.5, 0.88
    moved = np.array([-0.21, -0.19, 0.0, 2.0], np.float32)  # first entry still below logit(0.45) = -0.2007
    rep = compare_outputs({"pred_masks": logits}, {"pred_masks": moved}, ModelMetadata(mask_threshold=t), "fp16")
    assert rep.outputs["pred_masks"].mask_agreement == 1.0
    probs = 1 / (1 + np.exp(-logits))
    assert (probs > t).tolist() == [False, True, True, True]
    flip = compare_outputs({"masks": probs}, {"masks": np.where(probs > t, 0.44, 0.46)},
                           ModelMetadata(mask_threshold=t))
    assert flip.outputs["masks"].mask_agreement == 0.0 and not flip.passed
    for precision in ("fp32", "fp16", "bf16", "int8"):
        assert compare_outputs({"masks": probs}, {"masks": probs}, META, precision).passed
    with pytest.raises(ValueError, match="precision"):
        compare_outputs({}, {}, META, "fp8")
    assert "PASSED" in rep.table() and rep.to_json()["passed"]


def test_random_feeds_and_timer():
    f = random_feeds(2, 64, 96, seed=1)
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
    assert "none.engine: file not found" in capsys.readouterr().err
    (tmp_path / "big.engine").write_bytes(b"\0" * 2048)
    assert cli_main(["info", str(tmp_path / "big.engine")]) == 2
    assert "no sidecar" in capsys.readouterr().err
    if not _deps.tensorrt_available():
        onnx = pytest.importorskip("onnx")
        graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                       [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                       [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
        onnx.save(onnx.helper.make_model(graph), str(tmp_path / "m.onnx"))
        assert cli_main(["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.engine")]) == 2
        assert 'pip install ".[tensorrt]" (in the calibnet checkout)' in capsys.readouterr().err
    assert cli_main(["build", "--opt-level", "9", "m.onnx"]) == 2


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


@pytest.mark.slow
def test_fp16_pass_on_real_calibnet_graph(tmp_path):
    """R18 CalibNet at 64x96, portable ONNX: the FP16 graph (FP32 islands) runs in ONNX Runtime and its
    binary masks agree with the FP32 graph on >= 99% of pixels."""
    pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import calibnet
    from calibnet.engines.fp16 import convert_to_fp16
    from calibnet.export import export_onnx

    model = calibnet.build_model("r18", seed=0, quiet=True).eval()
    path = export_onnx(model, tmp_path / "r18.onnx", flavor="portable", height=64, width=96, simplify=False)
    m16, rep = convert_to_fp16(onnx.load(str(path)))
    assert any("LayerNormalization" in n for n in rep.fp32_nodes) and rep.fp16_nodes > 2 * len(rep.fp32_nodes)
    # the sampling-location arithmetic: offsets over the normalizer (a Reciprocal and a Mul in the graph)
    assert any("sampling_offsets" in n for n in rep.fp32_nodes)
    assert any(n.endswith(("/Div", "/Reciprocal")) for n in rep.fp32_nodes)
    feeds = random_feeds(1, 64, 96, seed=0)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref_sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in ref_sess.get_outputs()]
    ref = dict(zip(names, ref_sess.run(None, feeds)))
    got = dict(zip(names, ort.InferenceSession(m16.SerializeToString(), so,
                                               providers=["CPUExecutionProvider"]).run(None, feeds)))
    rep = compare_outputs(ref, got, ModelMetadata(), "fp16")
    key = "pred_masks" if "pred_masks" in ref else "masks"
    assert rep.outputs[key].mask_agreement >= 0.99, rep.table()
    assert all(o.nonfinite == 0 for o in rep.outputs.values())
