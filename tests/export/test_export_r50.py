"""Issue 3 acceptance: R50 (deterministic weights) exported ONCE per flavour with dynamic H/W, run on ONNX
Runtime CPU, reproduces the official references ref_A / ref_B and PyTorch at portrait and wide sizes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import padded_network_input  # noqa: E402

from calibnet.export import export_onnx  # noqa: E402
from calibnet.export.msda_onnx import PLUGIN_NAME, attach_reference_function, plugin_nodes  # noqa: E402
from calibnet.runtime.core.contract import ModelMetadata  # noqa: E402

FLAVORS = ("portable", "tensorrt")


@pytest.fixture(scope="module")
def r50_files(r50_model, tmp_path_factory):
    """One dynamic-H/W file per flavour (the portable one exactly as the issue's acceptance call)."""
    d = tmp_path_factory.mktemp("r50_onnx")
    return {
        "portable": export_onnx(r50_model, d / "r50_portable.onnx", flavor="portable", height=320, width=480,
                                dynamic=True),
        "tensorrt": export_onnx(r50_model, d / "r50_trt.onnx", flavor="tensorrt", height=320, width=480,
                                dynamic=True, simplify=False),
    }


@pytest.fixture(scope="module")
def sessions(r50_files):
    out = {}
    for flavor, path in r50_files.items():
        proto = onnx.load(str(path))
        if flavor == "tensorrt":
            proto = attach_reference_function(proto)  # the CPU reference body of the plugin node
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        out[flavor] = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return out


def _run(sess, rgb, depth, valid):
    outs = sess.run(None, {"rgb": np.asarray(rgb, np.float32), "depth": np.asarray(depth, np.float32),
                           "valid_hw": np.asarray(valid, np.int64)})
    return dict(zip([o.name for o in sess.get_outputs()], outs))


def _assert_close(got, want):
    assert np.abs(got["pred_logits"] - want["pred_logits"]).max() <= 1e-3
    assert np.abs(got["pred_scores"] - want["pred_scores"]).max() <= 1e-3
    assert np.abs(got["pred_masks"] - want["pred_masks"]).max() <= 1e-2
    assert ((got["pred_masks"] > 0) == (want["pred_masks"] > 0)).mean() >= 0.999


@pytest.mark.slow
@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("ref_name", ["ref_A_320x480.npz", "ref_B_375x500.npz"])
def test_r50_onnx_reproduces_official_reference(sessions, official_dir, ref_name, flavor):
    ref = np.load(official_dir / ref_name)
    rgb, depth, (h, w) = padded_network_input(ref["net_rgb_u8"], ref["net_depth_u8"])
    got = _run(sessions[flavor], rgb.numpy(), depth.numpy(), [[h, w]])
    _assert_close(got, ref)
    assert got["depth_trust"].shape == (1, 3)


@pytest.fixture(scope="module")
def other_sizes(r50_model):
    """Portrait and wide inputs (padded, with a valid region) and PyTorch's outputs for them."""
    cases = {}
    g = np.random.default_rng(3)
    for name, (H, W, h, w) in {"portrait": (448, 320, 440, 300), "wide": (256, 576, 250, 560)}.items():
        rgb = (g.random((1, 3, H, W)) * 255).astype(np.float32)
        depth = (g.random((1, 1, H, W)) * 255).astype(np.float32)
        valid = np.array([[h, w]], dtype=np.int64)
        with torch.no_grad():
            ref = r50_model(torch.from_numpy(rgb), torch.from_numpy(depth), image_sizes=torch.from_numpy(valid))
        cases[name] = (rgb, depth, valid, {k: v.numpy() for k, v in ref.items()})
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("case", ["portrait", "wide"])
def test_r50_onnx_matches_pytorch_at_other_sizes(sessions, other_sizes, flavor, case):
    rgb, depth, valid, ref = other_sizes[case]
    got = _run(sessions[flavor], rgb, depth, valid)
    _assert_close(got, ref)
    assert np.abs(got["depth_trust"] - ref["depth_trust"]).max() <= 1e-3


@pytest.mark.slow
def test_r50_graph_contents_and_metadata(r50_files):
    trt = onnx.load(str(r50_files["tensorrt"]))
    portable = onnx.load(str(r50_files["portable"]))
    assert len(plugin_nodes(trt)) == 6
    assert not any(n.op_type == "GridSample" for n in trt.graph.node)
    assert not any(n.op_type == PLUGIN_NAME or n.domain not in ("", "ai.onnx") for n in portable.graph.node)
    assert sum(n.op_type == "GridSample" for n in portable.graph.node) == 6 * 3  # 6 MSDA calls x 3 levels
    for proto, flavor in ((trt, "tensorrt"), (portable, "portable")):
        assert [i.name for i in proto.graph.input] == ["rgb", "depth", "valid_hw"]
        dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]
        meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
        assert (meta.flavor, meta.dynamic_hw, meta.dynamic_batch, meta.num_kernels) == (flavor, True, True, 50)
        assert (meta.height, meta.width, meta.min_hw, meta.max_hw) == (320, 480, (320, 320), (480, 480))
        assert (meta.cls_threshold, meta.mask_threshold, meta.opset) == (0.005, 0.45, 17)
