"""Issue 13 acceptance (slow): Swin-T, PVTv2-B2-Li and P2T-Large built from the official YAMLs and loaded from
a detectron2-format checkpoint of the deterministic weights (seed 0 over each manifest) reproduce the official
reference outputs ref_<variant>_A/B in PyTorch; ONE dynamic export per flavour reproduces them on ONNX Runtime
and matches PyTorch at portrait and wide sizes and at batch 2 (from the same file); calibnet-infer on the
portable file reproduces the official end-to-end result of ref_<variant>_B.

Each variant's model, files and sessions are module-scoped fixtures (one variant alive at a time). The exports
trace at a small size (192x256) to keep the trace cheap: every other size is a test of the dynamic graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import official_state_dict, padded_network_input  # noqa: E402

import calibnet  # noqa: E402
from calibnet.export import export_onnx  # noqa: E402
from calibnet.export.msda_onnx import attach_reference_function  # noqa: E402

pytestmark = pytest.mark.slow

VARIANTS = {
    "swint": "CalibNet_SwinT_50e_50q_320size.yaml",
    "pvt": "CalibNet_PVT_50e_50q_320size.yaml",
    "p2t": "CalibNet_P2T_large_50e_50q_320size.yaml",
}
FLAVORS = ("portable", "tensorrt")
REFS = ("A_320x480", "B_375x500")
#: (padded H, W, valid h, w): portrait and wide, sizes of no reference file
OTHER_SIZES = {"portrait": (288, 192, 280, 180), "wide": (160, 352, 150, 340)}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, official_dir, tmp_path_factory):
    """(name, model from the official YAML with the deterministic detectron2-format checkpoint, work dir)."""
    name = request.param
    work = tmp_path_factory.mktemp(name)
    ckpt = work / f"det_{name}_seed0.pth"
    torch.save({"model": official_state_dict(official_dir, f"manifest_{name}.json")}, ckpt)
    cfg = calibnet.CalibNetConfig.from_yaml(official_dir / "configs" / VARIANTS[name])
    model = calibnet.CalibNet(cfg)
    calibnet.load_checkpoint(model, ckpt)  # strict
    return name, model.eval(), work


@pytest.fixture(scope="module")
def eager_other_sizes(variant):
    """PyTorch outputs at the portrait and wide sizes, and a batch of two different portrait images."""
    _, model, _ = variant
    g = np.random.default_rng(5)
    cases = {}
    for case, (H, W, h, w) in OTHER_SIZES.items():
        B = 2 if case == "portrait" else 1
        rgb = (g.random((B, 3, H, W)) * 255).astype(np.float32)
        depth = (g.random((B, 1, H, W)) * 255).astype(np.float32)
        valid = np.array([[h, w], [H, W - 32]][:B], dtype=np.int64)
        with torch.no_grad():
            out = model(torch.from_numpy(rgb), torch.from_numpy(depth), image_sizes=torch.from_numpy(valid))
        cases[case] = (rgb, depth, valid, {k: v.numpy() for k, v in out.items()})
    return cases


@pytest.fixture(scope="module")
def sessions(variant):
    """One dynamic (batch, H, W) export per flavour, as ONNX Runtime sessions (the tensorrt flavour through
    its GridSample reference body)."""
    name, model, work = variant
    out = {}
    for flavor in FLAVORS:
        path = export_onnx(model, work / f"{name}_{flavor}.onnx", flavor=flavor, height=192, width=256,
                           dynamic=True, min_hw=(96, 96), max_hw=(640, 640), simplify=False)
        proto = onnx.load(str(path))
        if flavor == "tensorrt":
            proto = attach_reference_function(proto)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        out[flavor] = (path, ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]))
    return out


def _run(sess, rgb, depth, valid):
    outs = sess.run(None, {"rgb": np.asarray(rgb, np.float32), "depth": np.asarray(depth, np.float32),
                           "valid_hw": np.asarray(valid, np.int64)})
    return dict(zip([o.name for o in sess.get_outputs()], outs, strict=True))


def _diffs(got, want):
    d = {k: float(np.abs(np.asarray(got[k]) - want[k]).max()) for k in ("pred_logits", "pred_scores", "pred_masks")}
    d["mask_agreement"] = float(((np.asarray(got["pred_masks"]) > 0) == (want["pred_masks"] > 0)).mean())
    return d


def test_eager_reproduces_official_references(variant, official_dir):
    name, model, _ = variant
    for ref_name in REFS:
        ref = np.load(official_dir / f"ref_{name}_{ref_name}.npz")
        rgb, depth, hw = padded_network_input(ref["net_rgb_u8"], ref["net_depth_u8"])
        with torch.no_grad():
            out = model(rgb, depth, image_sizes=[hw])
        for key in ("pred_logits", "pred_scores", "pred_masks"):
            assert out[key].shape == ref[key].shape, (name, ref_name, key)
        d = _diffs({k: v.numpy() for k, v in out.items()}, ref)
        assert d["pred_logits"] <= 1e-4 and d["pred_scores"] <= 1e-4, (name, ref_name, d)
        assert d["pred_masks"] <= 1e-3 and d["mask_agreement"] >= 0.9999, (name, ref_name, d)
        trust = np.concatenate([ref["depth_trust_dsa_kernel_branch"], ref["depth_trust_dsa_wsf_t3"],
                                ref["depth_trust_dsa_wsf_res2"]])
        assert np.abs(out["depth_trust"].numpy()[0] - trust).max() <= 1e-4, (name, ref_name)


def test_eager_batch_of_two_equals_each_image_alone(variant, eager_other_sizes):
    """At the same padded size a batch of two different images gives each image's own result (no window
    or token of one image leaks into the other)."""
    _, model, _ = variant
    rgb, depth, valid, batch = eager_other_sizes["portrait"]
    i = 1  # the second image (its own valid size); one forward keeps P2T-Large affordable
    with torch.no_grad():
        alone = model(torch.from_numpy(rgb[i:i + 1]), torch.from_numpy(depth[i:i + 1]),
                      image_sizes=torch.from_numpy(valid[i:i + 1]))
    for key in ("pred_logits", "pred_scores", "pred_masks"):
        assert np.abs(alone[key].numpy()[0] - batch[key][i]).max() <= 1e-4, key


@pytest.mark.parametrize("flavor", FLAVORS)
def test_dynamic_onnx_reproduces_references_and_pytorch_at_other_sizes(variant, sessions, eager_other_sizes,
                                                                      official_dir, flavor):
    name, _, _ = variant
    _, sess = sessions[flavor]
    for ref_name in REFS:
        ref = np.load(official_dir / f"ref_{name}_{ref_name}.npz")
        rgb, depth, hw = padded_network_input(ref["net_rgb_u8"], ref["net_depth_u8"])
        d = _diffs(_run(sess, rgb.numpy(), depth.numpy(), [hw]), ref)
        assert d["pred_logits"] <= 1e-3 and d["pred_scores"] <= 1e-3, (name, flavor, ref_name, d)
        assert d["pred_masks"] <= 1e-2 and d["mask_agreement"] >= 0.999, (name, flavor, ref_name, d)
    for case, (rgb, depth, valid, want) in eager_other_sizes.items():
        got = _run(sess, rgb, depth, valid)
        assert got["pred_masks"].shape == want["pred_masks"].shape, (name, flavor, case)
        d = _diffs(got, want)
        assert d["pred_logits"] <= 1e-3 and d["pred_scores"] <= 1e-3, (name, flavor, case, d)
        assert d["pred_masks"] <= 1e-2 and d["mask_agreement"] >= 0.999, (name, flavor, case, d)
        assert np.abs(got["depth_trust"] - want["depth_trust"]).max() <= 1e-3


def test_calibnet_infer_reproduces_official_end_to_end(variant, sessions, official_dir):
    """calibnet-infer (ONNX Runtime, no torch in the path) on the ref_B image and depth files: the same
    instances as the official test path, scores within 1e-3, >= 99.99% of mask pixels equal."""
    cv2 = pytest.importorskip("cv2")
    mask_util = pytest.importorskip("pycocotools.mask")
    from calibnet.cli.infer import main

    name, _, work = variant
    ref = np.load(official_dir / f"ref_{name}_B_375x500.npz")
    rgb_path, depth_path = work / "B_rgb.png", work / "B_depth.png"
    cv2.imwrite(str(rgb_path), ref["net_rgb_u8"][:, :, ::-1])
    cv2.imwrite(str(depth_path), ref["net_depth_u8"])
    out = work / "infer"
    assert main([str(sessions["portable"][0]), "--rgb", str(rgb_path), "--depth", str(depth_path),
                 "--out", str(out), "--no-overlay"]) == 0
    results = json.loads((out / "results.json").read_text())
    k, h, w = ref["e2e_masks_shape"]
    want_masks = np.unpackbits(ref["e2e_masks_packed"], axis=-1)[..., :w].astype(bool)
    order = np.argsort(-ref["e2e_scores"], kind="stable")
    assert len(results) == k, (name, len(results), k)
    got_scores = np.array([r["score"] for r in results])
    assert np.abs(np.sort(got_scores)[::-1] - ref["e2e_scores"][order]).max() <= 1e-3
    got_masks = np.stack([mask_util.decode(r["segmentation"]).astype(bool) for r in results])
    got_masks = got_masks[np.argsort(-got_scores, kind="stable")]
    assert got_masks.shape == (k, h, w)
    assert (got_masks == want_masks[order]).mean() >= 0.9999, name
