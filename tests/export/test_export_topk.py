"""In-graph NMS-free selection (topk=K) gives the same kept instances as selection after a full graph."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from calibnet.export import export_onnx  # noqa: E402
from calibnet.export.topk import BELOW_THRESHOLD_SCORE, TopKDeploy  # noqa: E402
from calibnet.runtime.core.contract import ModelMetadata  # noqa: E402
from calibnet.runtime.core.feeds import random_feeds  # noqa: E402
from calibnet.runtime.core.postprocess import select_instances  # noqa: E402

K = 10


@pytest.fixture(scope="module")
def files(r18, tmp_path_factory):
    d = tmp_path_factory.mktemp("topk")
    kw = {"height": 64, "width": 96, "dynamic": True, "min_hw": (32, 32), "max_hw": (256, 256), "simplify": False}
    return {"full": export_onnx(r18, d / "full.onnx", **kw), "topk": export_onnx(r18, d / "k.onnx", topk=K, **kw)}


@pytest.mark.slow
@pytest.mark.parametrize("shape,valid", [((1, 64, 96), [[60, 90]]), ((2, 96, 128), [[96, 128], [80, 100]])])
def test_topk_graph_equals_selection_after_full_graph(files, shape, valid):
    feeds = {**random_feeds(*shape, seed=shape[1]), "valid_hw": np.array(valid, dtype=np.int64)}
    full = ort.InferenceSession(str(files["full"]), providers=["CPUExecutionProvider"])
    topk = ort.InferenceSession(str(files["topk"]), providers=["CPUExecutionProvider"])
    logits, obj, masks, trust_full = full.run(None, feeds)
    out = dict(zip([o.name for o in topk.get_outputs()], topk.run(None, feeds)))
    assert out["scores"].shape == (shape[0], K) and out["masks"].shape == (shape[0], K, shape[1] // 2, shape[2] // 2)
    np.testing.assert_allclose(out["depth_trust"], trust_full, atol=1e-6)
    for b in range(shape[0]):
        keep, scores, probs = select_instances(logits[b], obj[b], masks[b], 0.005, 0.45, K)
        order = np.argsort(-scores, kind="stable")
        got_order = np.argsort(-out["scores"][b], kind="stable")
        assert len(keep) == K
        np.testing.assert_array_equal(np.sort(out["keep_index"][b]), keep)
        assert np.abs(out["scores"][b][got_order] - scores[order]).max() <= 1e-4
        by_kernel = {int(k): i for i, k in enumerate(out["keep_index"][b])}
        mine = out["masks"][b][[by_kernel[int(k)] for k in keep]]
        assert np.abs(mine - probs).max() <= 1e-5
        assert ((mine > 0.45) == (probs > 0.45)).all()


def test_topk_flags_kernels_below_the_score_threshold(r18):
    model = copy.deepcopy(r18)
    g = torch.Generator().manual_seed(0)
    rgb, depth = torch.rand(1, 3, 64, 96, generator=g) * 255, torch.rand(1, 1, 64, 96, generator=g) * 255
    valid = torch.tensor([[64, 96]])
    with torch.no_grad():
        out = model(rgb, depth, image_sizes=valid)
        pre = torch.sqrt(out["pred_logits"][0, :, 0].sigmoid() * out["pred_scores"][0, :, 0].sigmoid())
        threshold = float(pre.median())  # half of the kernels fall below it
        model.cfg.inference.cls_threshold = threshold
        scores, _, _, keep = TopKDeploy(model, 50)(rgb, depth, valid)
    below = pre[keep[0]] <= threshold
    assert 0 < int(below.sum()) < 50
    assert (scores[0][below] == BELOW_THRESHOLD_SCORE).all() and (scores[0][~below] >= 0).all()
    with pytest.raises(ValueError, match="topk"):
        TopKDeploy(model, 0)


@pytest.mark.slow
def test_topk_metadata(files):
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(files["topk"])).metadata_props})
    assert meta.topk == K and meta.output_names == ("scores", "masks", "depth_trust", "keep_index")
    assert meta.extra["topk_below_threshold_score"] == BELOW_THRESHOLD_SCORE


def _frames(n, seed=0):
    from calibnet.data.synthetic import make_scene

    sizes = [(60, 90), (75, 100), (60, 90)]
    scenes = [make_scene(seed=seed + i, height=sizes[i % 3][0], width=sizes[i % 3][1]) for i in range(n)]
    return [s.rgb for s in scenes], [s.depth for s in scenes]


@pytest.mark.slow
def test_runtime_decodes_topk_graph_like_full_graph(files):
    from calibnet.runtime import Runtime

    full, topk = Runtime.open(files["full"]), Runtime.open(files["topk"])
    full.metadata.max_detections = K  # the top-k graph keeps K: compare like with like
    full.metadata.resize_short = topk.metadata.resize_short = 64
    full.metadata.resize_max = topk.metadata.resize_max = 96
    rgbs, depths = _frames(3)
    for a, b in zip(full.predict_batch(rgbs, depths), topk.predict_batch(rgbs, depths)):
        assert len(a) == len(b) == K
        np.testing.assert_array_equal(a.kernel_index, b.kernel_index)
        assert np.abs(a.scores - b.scores).max() <= 1e-4
        assert (a.masks != b.masks).mean() <= 1e-3
        assert a.masks.shape[1:] == b.masks.shape[1:]


@pytest.mark.slow
def test_batched_predict_equals_one_frame_at_a_time(files):
    from calibnet.runtime import Runtime

    rt = Runtime.open(files["full"])
    rt.metadata.resize_short, rt.metadata.resize_max = 64, 96
    assert rt.metadata.dynamic_batch
    rgbs, depths = _frames(3, seed=5)
    batched = rt.predict_batch(rgbs, depths)  # frames 0 and 2 share a shape: one batch of 2, one of 1
    for rgb, depth, b in zip(rgbs, depths, batched):
        a = rt.predict(rgb, depth)
        np.testing.assert_array_equal(a.kernel_index, b.kernel_index)
        assert np.abs(a.scores - b.scores).max() <= 1e-4
        assert (a.masks != b.masks).mean() <= 1e-3
        assert set(b.timings) == {"pre", "infer", "post"}


def test_select_topk_drops_flagged_kernels_and_orders_by_kernel():
    from calibnet.runtime.core.postprocess import select_topk

    scores = np.array([0.9, 0.5, BELOW_THRESHOLD_SCORE, 0.2], np.float32)
    probs = np.random.default_rng(0).random((4, 3, 3)).astype(np.float32)
    keep_index = np.array([7, 2, 5, 4])
    keep, kept_scores, kept_probs = select_topk(scores, probs, keep_index, max_detections=10)
    np.testing.assert_array_equal(keep, [2, 4, 7])
    np.testing.assert_array_equal(kept_scores, np.array([0.5, 0.2, 0.9], np.float32))
    np.testing.assert_array_equal(kept_probs, probs[[1, 3, 0]])
    keep, _, _ = select_topk(scores, probs, keep_index, max_detections=2)  # the two best before rescoring
    np.testing.assert_array_equal(keep, [2, 7])
