"""COCO mask evaluation: known predictions give known AP / AP50 / AP70; run_eval on any runtime; no torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_without_torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import calibnet
from calibnet.data import decode_segmentation, load_records, read_rgb, write_synthetic_dataset
from calibnet.evaluation import EvaluationError, evaluate_coco, run_eval
from calibnet.runtime import Prediction
from calibnet.runtime.core.postprocess import masks_to_boxes

H, W = 64, 64


def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _gt_file(tmp_path: Path, masks: list[np.ndarray]) -> Path:
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": _rle(m), "area": float(m.sum()),
             "bbox": [0, 0, 1, 1], "iscrowd": 0} for i, m in enumerate(masks)]
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "height": H, "width": W}], "annotations": anns,
          "categories": [{"id": 1, "name": "foreground"}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path


def _det(mask: np.ndarray, score: float) -> dict:
    return {"image_id": 1, "category_id": 1, "segmentation": _rle(mask), "score": score}


def test_hand_built_case(tmp_path):
    """2 GT squares of 100 px; detections (score order) d1: 81 px inside GT A (IoU 0.81), d2: a false positive,
    d3: 62 px inside GT B (IoU 0.62).

    Per IoU threshold t, the TP/FP sequence and COCO's 101-point interpolated precision:
    - t <= 0.60 (0.50, 0.55, 0.60): TP FP TP -> recall .5 .5 1, precision 1 .5 2/3; interpolated precision is 1 for
      recall 0..0.50 (51 points) and 2/3 for 0.51..1 (50 points): AP_t = (51 + 50 * 2/3) / 101.
    - 0.60 < t <= 0.80 (0.65, 0.70, 0.75, 0.80): TP FP FP -> recall .5; AP_t = 51 / 101.
    - t > 0.80 (0.85, 0.90, 0.95): no TP -> 0.
    """
    A, B = _box(0, 10, 0, 10), _box(30, 40, 30, 40)
    d1 = _box(0, 9, 0, 9)
    d3 = _box(30, 36, 30, 40)
    d3[36, 30:32] = True
    assert (d1.sum(), d3.sum()) == (81, 62)
    gt = _gt_file(tmp_path, [A, B])
    res = tmp_path / "res.json"
    res.write_text(json.dumps([_det(d1, 0.9), _det(_box(50, 60, 0, 10), 0.8), _det(d3, 0.7)]))
    m = evaluate_coco(gt, res)
    high, low = (51 + 50 * 2 / 3) / 101, 51 / 101
    assert m["AP50"] == pytest.approx(100 * high)
    assert m["AP70"] == pytest.approx(100 * low)
    assert m["AP75"] == pytest.approx(100 * low)
    assert m["AP"] == pytest.approx(100 * (3 * high + 4 * low) / 10)
    assert m["num_gt"] == 2 and m["num_detections"] == 3
    # the same through the lazily loaded top-level name, results given as a list
    assert calibnet.evaluate_coco(gt, json.loads(res.read_text()))["AP"] == pytest.approx(m["AP"])


def test_ap70_is_the_precision_array_at_iou_070(tmp_path):
    """AP70 equals the mean of COCOeval's precision[T=0.70, :, :, area all, 100 dets] over defined entries."""
    rng = np.random.default_rng(3)
    gts = [_box(y, y + 12, x, x + 12) for y, x in ((2, 2), (20, 30), (40, 5), (45, 45))]
    gt = _gt_file(tmp_path, gts)
    dets = []
    for g in gts:  # shifted copies: IoUs spread over 0.5..0.9
        s = int(rng.integers(0, 3))
        dets.append(_det(np.roll(g, s, axis=1), float(rng.random())))
        dets.append(_det(np.roll(g, s + 2, axis=0), float(rng.random())))
    m = evaluate_coco(gt, dets)
    coco = COCO(str(gt))
    ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(dets))), "segm")
    ev.evaluate()
    ev.accumulate()
    t = list(np.round(ev.params.iouThrs, 2)).index(0.7)
    p = ev.eval["precision"][t, :, 0, ev.params.areaRngLbl.index("all"), ev.params.maxDets.index(100)]
    assert 0 < m["AP70"] < 100
    assert m["AP70"] == pytest.approx(100 * p[p > -1].mean())
    assert m["AP50"] >= m["AP70"] >= m["AP75"]


def test_perfect_predictions_and_empty_results(tmp_path):
    spec = write_synthetic_dataset(tmp_path / "rle", 4, seed=1, height=64, width=96)
    poly = write_synthetic_dataset(tmp_path / "poly", 4, seed=1, height=64, width=96, segmentation="polygon")
    for s in (spec, poly):
        dets = []
        for rec in load_records(s):
            for k, seg in enumerate(rec.segmentations):
                dets.append({"image_id": rec.image_id, "category_id": 1, "score": 0.9 - 0.1 * k,
                             "segmentation": _rle(decode_segmentation(seg, 64, 96))})
        m = evaluate_coco(s.json_file, dets)
        assert (m["AP"], m["AP50"], m["AP70"], m["AP75"]) == (100.0, 100.0, 100.0, 100.0)
        assert m["num_gt"] == len(dets) > 4
    empty = evaluate_coco(spec.json_file, [])
    assert (empty["AP"], empty["AP50"], empty["AP70"]) == (0.0, 0.0, 0.0) and empty["num_detections"] == 0
    # one image only: the detections of other images are ignored
    first = [d for d in dets if d["image_id"] == 1]
    assert evaluate_coco(poly.json_file, first, img_ids=[1])["AP"] == 100.0
    assert evaluate_coco(poly.json_file, first)["AP"] < 100.0


def test_bad_inputs_are_named(tmp_path):
    gt = _gt_file(tmp_path, [_box(0, 10, 0, 10)])
    with pytest.raises(EvaluationError, match="missing.json"):
        evaluate_coco(tmp_path / "missing.json", [])
    with pytest.raises(EvaluationError, match="image ids the ground truth does not have"):
        evaluate_coco(gt, [{"image_id": 9, "category_id": 1, "segmentation": _rle(_box(0, 5, 0, 5)), "score": 1.0}])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EvaluationError, match="bad.json"):
        evaluate_coco(gt, tmp_path / "bad.json")


class _OracleRuntime:
    """A stand-in for calibnet.runtime.Runtime that returns the ground-truth masks of the image it is given
    (found by pixel content), or nothing when ``empty``."""

    def __init__(self, spec, empty: bool = False):
        self.table = {}
        self.empty = empty
        self.calls = 0
        for rec in load_records(spec):
            rgb = read_rgb(spec.image_path(rec.file_name))
            masks = np.array([decode_segmentation(s, *rgb.shape[:2]) for s in rec.segmentations], bool)
            self.table[rgb.tobytes()] = masks.reshape(-1, *rgb.shape[:2])

    def predict(self, rgb, depth):
        self.calls += 1
        assert depth.shape == rgb.shape[:2] and depth.dtype == np.uint8
        masks = self.table[rgb.tobytes()]
        if self.empty:
            masks = masks[:0]
        scores = np.linspace(0.9, 0.5, len(masks)).astype(np.float32)
        return Prediction(masks=masks, scores=scores, boxes=masks_to_boxes(masks), depth_trust=np.zeros(3, np.float32),
                          kernel_index=np.arange(len(masks)))


def test_run_eval_with_any_runtime(tmp_path):
    spec = write_synthetic_dataset(tmp_path / "syn", 5, seed=2, height=64, width=96)
    oracle = _OracleRuntime(spec)
    m = run_eval(oracle, spec, out_dir=tmp_path / "out", progress=False)
    assert (m["AP"], m["AP50"], m["AP70"]) == (100.0, 100.0, 100.0)
    assert m["images"] == 5 and oracle.calls == 5 and m["seconds"] > 0
    results = json.loads(Path(m["results_json"]).read_text())
    assert Path(m["results_json"]).name == "synthetic_results.json"
    assert {r["image_id"] for r in results} == {1, 2, 3, 4, 5} and len(results) == m["num_detections"]
    limited = run_eval(_OracleRuntime(spec, empty=True), spec, progress=False, limit=2)
    assert limited["images"] == 2 and limited["AP"] == 0.0 and limited["results_json"] is None


def test_evaluation_and_data_need_no_torch(tmp_path):
    """``import calibnet`` + evaluate_coco + the synthetic writer + run_eval work with torch blocked."""
    code = (
        "import json, numpy as np\n"
        "import calibnet\n"
        "from calibnet.data import write_synthetic_dataset, load_records\n"
        "from calibnet.evaluation import run_eval\n"
        f"spec = write_synthetic_dataset({str(tmp_path / 's')!r}, 2, seed=0, height=48, width=64)\n"
        "m = calibnet.evaluate_coco(spec.json_file, [])\n"
        "assert m['AP'] == 0.0, m\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok', len(load_records(spec)))\n"
    )
    res = run_without_torch(code, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "ok 2" in res.stdout
