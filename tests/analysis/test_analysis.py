"""calibnet.analysis on hand-built data sets whose statistics are known exactly (computed by hand in the
comments), the problems a broken data set has, and AP along the axes for predictions with a known AP."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibnet.analysis import (
    analyze_dataset,
    analyze_predictions,
    image_statistics,
    mask_iou,
    matching_curve,
    near_foreground,
    otsu_threshold,
)
from calibnet.analysis.stats import MATCH_THRESHOLDS, SIZE_EDGES, instance_statistics
from calibnet.data import DatasetError, DatasetSpec
from calibnet.data.synthetic import mask_to_rle


def _box(h: int, w: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """bool [h,w] with rows[0]..rows[1] and cols[0]..cols[1] (inclusive) set."""
    m = np.zeros((h, w), dtype=bool)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return m


def _write(root: Path, images: list[dict]) -> DatasetSpec:
    """A COCO-json data set (RGB/, depth/, GT/ salient maps, annotations.json) from image dicts with keys
    h, w, masks, depth (uint8 or None: no file), saliency (bool or None: no file)."""
    for sub in ("RGB", "depth", "GT"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    coco: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "fg"}]}
    for k, im in enumerate(images, start=1):
        name = f"{k:03d}.jpg"
        cv2.imwrite(str(root / "RGB" / name), np.full((im["h"], im["w"], 3), 127, np.uint8))
        if im.get("depth") is not None:
            cv2.imwrite(str(root / "depth" / f"{k:03d}.png"), im["depth"])
        if im.get("saliency") is not None:
            cv2.imwrite(str(root / "GT" / f"{k:03d}.png"), im["saliency"].astype(np.uint8) * 255)
        coco["images"].append({"id": k, "file_name": name, "height": im["h"], "width": im["w"]})
        for m in im["masks"]:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": k, "category_id": 1,
                                        "iscrowd": 0, "area": float(m.sum()), "segmentation": mask_to_rle(m)})
    (root / "annotations.json").write_text(json.dumps(coco))
    return DatasetSpec("hand", root / "annotations.json", root / "RGB", root / "depth")


def _hand_built() -> list[dict]:
    # image 1 (60x100): one centred 20x20 square, rows 20..39, cols 40..59 -> centroid ((49.5+.5)/100,
    # (29.5+.5)/60) = (0.5, 0.5); size 400/6000 = 1/15; salient map = the square; depth 50 inside, 200 outside:
    # Otsu's classes tie for every T in 50..199, OpenCV keeps the lowest, T = 50, near = square, IoU 1.
    sq = _box(60, 100, (20, 39), (40, 59))
    d1 = np.where(sq, 50, 200).astype(np.uint8)
    # image 2 (40x80): salient map = left strip cols 0..19; instances A rows 0..9 cols 40..49 (100 px, centroid
    # (45/80, 5/40)) and B rows 20..29 cols 60..79 (200 px, centroid (70/80, 25/40)), both outside it:
    # IoU(U, S) = 0, outside fraction 1; depth constant 128: no Otsu split, near = empty, IoU(empty, S) = 0.
    a = _box(40, 80, (0, 9), (40, 49))
    b = _box(40, 80, (20, 29), (60, 79))
    s2 = _box(40, 80, (0, 39), (0, 19))
    d2 = np.full((40, 80), 128, np.uint8)
    # image 3 (10x10): depth rows 0..2 = 20 (30 px), rows 3..4 = 60 (20 px), rows 5..9 = 220 (50 px).
    # Otsu: T in 20..59 -> w0 .3, mu0 20, w1 .7, mu1 12200/70; w0 w1 (mu1-mu0)^2 = 4998.9;
    #       T in 60..219 -> w0 .5, mu0 36, w1 .5, mu1 220; .25 * 184^2 = 8464 (max) -> T = 60, near = rows 0..4.
    # instances: rows 0..2 (30 px, size .3) and row 5 cols 0..8 (9 px, size .09); S = their union (39 px).
    # near & S = 30 px, near | S = 50 + 9 = 59 px -> depth IoU 30/59; obj IoU 1.
    d3 = np.zeros((10, 10), np.uint8)
    d3[:3], d3[3:5], d3[5:] = 20, 60, 220
    c = _box(10, 10, (0, 2), (0, 9))
    e = _box(10, 10, (5, 5), (0, 8))
    return [dict(h=60, w=100, masks=[sq], depth=d1, saliency=sq),
            dict(h=40, w=80, masks=[a, b], depth=d2, saliency=s2),
            dict(h=10, w=10, masks=[c, e], depth=d3, saliency=c | e)]


@pytest.fixture
def hand_spec(tmp_path: Path) -> DatasetSpec:
    return _write(tmp_path / "hand", _hand_built())


def test_centroid_and_box_centre_of_an_l_shape() -> None:
    # column 0 (10 px) + row 9 cols 1..9 (9 px): x = (10*.5 + (45 + 9*.5)) / 19 / 10, y = ((45+5) + 9*9.5) / 19 / 10
    m = np.zeros((10, 10), dtype=bool)
    m[:, 0] = True
    m[9, 1:] = True
    c = instance_statistics(m, "centroid")
    assert c is not None and c.size == pytest.approx(19 / 100)
    assert c.center == pytest.approx((54.5 / 19 / 10, 135.5 / 19 / 10))
    b = instance_statistics(m, "box")
    assert b is not None and b.center == pytest.approx((0.5, 0.5))
    assert instance_statistics(np.zeros((4, 4), bool)) is None


def test_iou_rule_matching_curve_and_otsu() -> None:
    z = np.zeros((3, 3), bool)
    assert mask_iou(z, z) == 1.0 and mask_iou(z, ~z) == 0.0
    assert MATCH_THRESHOLDS[50] == 0.5 and len(MATCH_THRESHOLDS) == 101
    curve = matching_curve([1.0, 0.0, 0.5, 0.25])
    assert curve[0] == 1.0 and curve[25] == 0.75 and curve[26] == 0.5 and curve[50] == 0.5 and curve[51] == 0.25
    assert curve[100] == 0.25
    d = np.zeros((10, 10), np.uint8)
    d[:3], d[3:5], d[5:] = 20, 60, 220
    assert otsu_threshold(d) == 60
    near, t = near_foreground(d, "near-dark")
    assert t == 60 and near.sum() == 50 and near[:5].all()
    far_is_near, _ = near_foreground(d, "near-bright")
    assert far_is_near.sum() == 50 and far_is_near[5:].all()
    assert otsu_threshold(np.full((5, 5), 7, np.uint8)) is None
    assert not near_foreground(np.full((5, 5), 7, np.uint8))[0].any()


def test_hand_built_dataset_statistics_are_exact(hand_spec: DatasetSpec) -> None:
    a = analyze_dataset(hand_spec, hand_spec.json_file.parent / "GT", progress=False)
    assert a.problems == []
    s = a.summary
    r1, r2, r3 = a.rows
    # per image
    assert r1.num_instances == 1 and r1.instances[0].center == (0.5, 0.5) and r1.instances[0].size == 400 / 6000
    assert (r1.object_iou, r1.outside_fraction, r1.depth_threshold, r1.depth_iou) == (1.0, 0.0, 50, 1.0)
    assert [i.center for i in r2.instances] == [(45 / 80, 5 / 40), (70 / 80, 25 / 40)]
    assert [i.size for i in r2.instances] == [100 / 3200, 200 / 3200]
    assert (r2.object_iou, r2.outside_fraction) == (0.0, 1.0) and [i.outside for i in r2.instances] == [1.0, 1.0]
    assert (r2.depth_threshold, r2.near_fraction, r2.depth_iou) == (None, 0.0, 0.0)
    assert (r3.depth_threshold, r3.depth_iou, r3.object_iou) == (60, 30 / 59, 1.0)
    assert [i.size for i in r3.instances] == [0.3, 0.09]
    # instances per image: counts 1, 2, 2
    ipi = s["instances_per_image"]
    assert ipi["bin_edges"] == [0, 1, 2, 3] and ipi["count"] == [0, 1, 2] and ipi["mean"] == 5 / 3 and ipi["max"] == 2
    assert s["instances"] == 5
    # centre histogram (20 bins): (0.5, 0.5) -> row 10 col 10; (0.5625, 0.125) -> row 2 col 11;
    # (0.875, 0.625) -> row 12 col 17; image 3: c (0.5, 0.15) -> row 3 col 10, e (0.45, 0.55) -> row 11 col 9
    h = np.asarray(s["center_bias"]["histogram"])
    expected = np.zeros((20, 20))
    for row, col in ((10, 10), (2, 11), (12, 17), (3, 10), (11, 9)):
        expected[row, col] += 1 / 5
    np.testing.assert_allclose(h, expected, atol=1e-15)
    assert s["center_bias"]["mean_center"] == pytest.approx([(0.5 + 0.5625 + 0.875 + 0.5 + 0.45) / 5,
                                                              (0.5 + 0.125 + 0.625 + 0.15 + 0.55) / 5])
    # sizes 1/15, 1/32, 1/16, .3, .09 -> log10 -1.18, -1.51, -1.20, -0.52, -1.05: bins (edge index k+1 = 10^(-5+k/4))
    # [10^-1.25, 10^-1) = 16 holds 1/15 and 1/16 (and .09 is 10^-1.046: 16 as well); 1/32 = 10^-1.505 -> bin 14;
    # .3 = 10^-.52 -> [10^-.75, 10^-.5) = bin 18
    counts = np.asarray(s["instance_size"]["count"])
    assert counts[16] == 3 and counts[14] == 1 and counts[18] == 1 and counts.sum() == 5
    assert s["instance_size"]["bin_edges"] == SIZE_EDGES.tolist()
    assert s["instance_size"]["classes"]["count"] == {"small": 0, "medium": 4, "large": 1}
    assert s["instance_size"]["median"] == 1 / 15
    # objects/instances: IoUs 1, 0, 1 -> curve 1 at t = 0, 2/3 for 0 < t <= 1
    oi = s["objects_instances"]
    assert oi["mean_iou"] == 2 / 3 and oi["fraction_iou_ge_0.5"] == 2 / 3
    assert oi["matching_curve"]["fraction"][0] == 1.0 and set(oi["matching_curve"]["fraction"][1:]) == {2 / 3}
    assert oi["instances_entirely_outside"] == 2 and oi["instances_mostly_outside"] == 2
    assert oi["mean_outside_fraction"] == 1 / 3
    # depth/saliency: IoUs 1, 0, 30/59 (= 0.508) -> curve 1 at 0, 2/3 up to 0.50, 1/3 from 0.51
    ds = s["depth_saliency"]
    assert ds["mean_iou"] == pytest.approx((1 + 30 / 59) / 3) and ds["fraction_iou_ge_0.5"] == 2 / 3
    f = ds["matching_curve"]["fraction"]
    assert f[0] == 1.0 and set(f[1:51]) == {2 / 3} and set(f[51:]) == {1 / 3}
    assert ds["constant_depth_maps"] == 1 and ds["mean_otsu_threshold"] == 55.0
    # the images to look at: image 2 (all of its labels outside the salient map), then the depth order
    assert [w["image_id"] for w in a.worst["instances_leave_salient_region"]] == [2]
    assert [w["image_id"] for w in a.worst["depth_disagrees"]] == [2, 3, 1]
    assert [w["image_id"] for w in a.worst["objects_instances_lowest_iou"]] == [2]


def test_without_salient_maps_the_union_stands_in(hand_spec: DatasetSpec) -> None:
    a = analyze_dataset(hand_spec, progress=False)
    s = a.summary
    assert s["objects_instances"]["skipped"] and "union" in s["objects_instances"]["note"]
    r1, r2, r3 = a.rows
    # depth against U: image 1 square -> 1; image 2 constant map, U non-empty -> 0; image 3 U = S -> 30/59
    assert (r1.depth_iou, r2.depth_iou, r3.depth_iou) == (1.0, 0.0, 30 / 59)
    assert s["depth_saliency"]["salient_reference"] == "union of instances"


def test_missing_and_mismatched_files_are_named_and_the_rest_analysed(tmp_path: Path) -> None:
    images = _hand_built()
    images[0]["depth"] = None  # depth map missing
    images[1]["saliency"] = np.zeros((5, 5), bool)  # salient map of another size
    images.append(dict(h=10, w=10, masks=[_box(10, 10, (0, 4), (0, 4))], depth=np.zeros((8, 8), np.uint8),
                       saliency=_box(10, 10, (0, 4), (0, 4))))  # depth of another size
    spec = _write(tmp_path / "broken", images)
    (spec.image_root / "002.jpg").unlink()  # an RGB file missing: its labels still count
    a = analyze_dataset(spec, spec.json_file.parent / "GT", progress=False)
    by_file = {Path(p["file"]).name: p["problem"] for p in a.problems}
    assert "not found" in by_file["001.png"] and "002.jpg" in by_file and "not found" in by_file["002.jpg"]
    assert "5x5" in by_file["002.png"] and "8x8" in by_file["004.png"]
    assert len(a.rows) == 4 and a.summary["instances"] == 6
    r1, r2, _, r4 = a.rows
    assert r1.depth_iou is None and r1.object_iou == 1.0  # no depth, labels measured
    assert r2.object_iou is None and r2.depth_iou is None  # no usable salient map
    assert r4.depth_iou is None and r4.object_iou == 1.0
    assert a.summary["depth_saliency"]["images"] == 1 and a.summary["objects_instances"]["images"] == 3


def test_image_statistics_rejects_masks_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="different sizes"):
        image_statistics(1, "x.jpg", [np.ones((4, 4), bool), np.ones((5, 4), bool)])


def test_predictions_ap_along_the_axes_is_exact(hand_spec: DatasetSpec) -> None:
    from pycocotools import mask as mask_utils

    gt = analyze_dataset(hand_spec, hand_spec.json_file.parent / "GT", progress=False)
    coco = json.loads(hand_spec.json_file.read_text())
    # perfect detections of every instance but the large one (image 3's rows 0..2, size .3)
    results = []
    for ann in coco["annotations"]:
        if ann["image_id"] == 3 and mask_utils.area(ann["segmentation"]) == 30:
            continue
        results.append({"image_id": ann["image_id"], "category_id": 1, "segmentation": ann["segmentation"],
                        "score": 0.9})
    p = analyze_predictions(gt, results)
    # 5 ground truths, 4 found with precision 1: recall 0.8 -> 81 of COCO's 101 recall points -> 81/101
    assert p["AP"]["AP"] == pytest.approx(8100 / 101) and p["AP"]["num_gt"] == 5
    by_size = p["AP_by_size"]
    assert np.isnan(by_size["small"]["AP"]) and by_size["small"]["num_gt"] == 0
    assert by_size["medium"]["AP"] == pytest.approx(100.0) and by_size["medium"]["num_gt"] == 4
    assert by_size["large"]["AP"] == 0.0 and by_size["large"]["num_gt"] == 1
    # by instance count: image 1 -> 100; images 2 and 3 (4 gt, 3 found) -> 76/101
    assert p["AP_by_instance_count"]["1"]["AP"] == pytest.approx(100.0)
    assert p["AP_by_instance_count"]["2"]["AP"] == pytest.approx(7600 / 101)
    assert set(p["AP_by_instance_count"]) == {"1", "2"}
    # predicted statistics: 4 instances; count exact on images 1 and 2; image 3 predicted union = 9 px of 39
    c = p["comparison"]
    assert c["count_exact"] == 2 / 3 and c["count_mean_abs_error"] == 1 / 3
    assert c["union_iou_mean"] == pytest.approx((1 + 1 + 9 / 39) / 3)
    assert p["statistics"]["instances"] == 4
    # depth axis: image 2 has depth IoU 0 (< 0.5), images 1 and 3 >= 0.5
    assert p["AP_by_consistency"]["depth_iou"]["< 0.5"]["images"] == 1
    assert p["AP_by_consistency"]["depth_iou"][">= 0.5"]["images"] == 2
    with pytest.raises(DatasetError, match="none of the 3 images"):
        analyze_predictions(gt, [dict(r, image_id=r["image_id"] + 100) for r in results])


def test_16bit_metric_depth_and_near_bright_maps(tmp_path: Path) -> None:
    # the square is at 500 mm, the rest at 3000 mm: converted to near = dark 8-bit (0 and 255), Otsu T = 0,
    # near = the square; the same scene as an 8-bit near-bright map needs --depth-direction near-bright
    sq = _box(60, 100, (20, 39), (40, 59))
    spec = _write(tmp_path / "mm", [dict(h=60, w=100, masks=[sq], depth=None, saliency=sq)])
    cv2.imwrite(str(spec.depth_root / "001.png"), np.where(sq, 500, 3000).astype(np.uint16))
    row = analyze_dataset(spec, spec.json_file.parent / "GT", progress=False).rows[0]
    assert (row.depth_threshold, row.depth_iou) == (0, 1.0)
    cv2.imwrite(str(spec.depth_root / "001.png"), np.where(sq, 230, 40).astype(np.uint8))
    wrong = analyze_dataset(spec, spec.json_file.parent / "GT", progress=False).rows[0]
    right = analyze_dataset(spec, spec.json_file.parent / "GT", progress=False, depth_direction="near-bright").rows[0]
    assert wrong.depth_iou == 0.0 and right.depth_iou == 1.0 and right.depth_threshold == 40
