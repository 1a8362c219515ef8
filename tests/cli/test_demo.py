"""The README's main job (calibnet-demo) end to end on a small config."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

import numpy as np  # noqa: E402

from calibnet.cli.demo import (  # noqa: E402
    CAPTION_H,
    DIFF_COLOR,
    REFERENCE_COLOR,
    RUNTIME_COLOR,
    compare_picture,
    main,
    panel,
)
from calibnet.runtime.core.postprocess import masks_to_boxes  # noqa: E402
from calibnet.runtime.core.prediction import Prediction  # noqa: E402


def _pred(masks: np.ndarray, scores: list[float]) -> Prediction:
    return Prediction(masks, np.array(scores, np.float32), masks_to_boxes(masks), np.ones(3, np.float32),
                      np.arange(len(masks)))


def _painted(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return (img == np.array(color, np.uint8)).all(axis=2)


def test_the_picture_shows_the_two_compared_masks_and_their_difference():
    h, w = 120, 160
    rgb = np.full((h, w, 3), 90, np.uint8)
    depth = np.full((h, w), 40, np.uint8)
    ref = np.zeros((2, h, w), bool)
    ref[0, 40:100, 30:120] = True
    ref[1, 5:20, 5:20] = True
    got = ref.copy()
    got[0, 40:45, 30:120] = False  # the runtime's mask misses five rows
    pic = compare_picture(rgb, depth, _pred(ref, [0.8, 0.1]), _pred(got, [0.8, 0.1]), ["line one", "line two"])
    assert pic.shape == (2 * h + 2 * CAPTION_H + 6, 2 * w, 3)
    below = slice(30, None)  # under the panel titles
    left, right = panel(pic, 1, 0, (h, w)), panel(pic, 1, 1, (h, w))
    assert np.array_equal(_painted(left, REFERENCE_COLOR)[below], ref[0][below])  # instance 1 only
    assert np.array_equal(_painted(right, RUNTIME_COLOR)[below], got[0][below])
    assert np.array_equal(_painted(right, DIFF_COLOR)[below], (ref[0] ^ got[0])[below])
    assert np.array_equal(panel(pic, 0, 0, (h, w))[below], rgb[below])


@pytest.mark.slow
def test_demo_exports_verifies_and_writes_overlay(tmp_path, capsys):
    assert main(["--config", "r18", "--out", str(tmp_path), "--height", "320", "--width", "448"]) == 0
    captured = capsys.readouterr()
    assert "-> PASS" in captured.out and "timing (r18" in captured.out and "next: " in captured.out
    assert "MEANINGLESS" in captured.err and "demo [4/4]" in captured.out
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["verify_mask_agreement"] >= 0.999
    assert set(report["timings_ms"]) == {"pre", "infer", "post"}
    assert report["overlay_instances"] == sum(s >= report["overlay_min_score"] for s in report["scores"])
    import cv2

    overlay = cv2.imread(str(tmp_path / "overlay.png"))
    assert overlay is not None and overlay.shape == (375, 500, 3)
    assert cv2.imread(str(tmp_path / "compare.png")).shape[:2] == (2 * 375 + 3 * CAPTION_H + 6, 1000)


def test_demo_missing_weights_is_a_clear_error(tmp_path, capsys):
    assert main(["--config", "r18", "--weights", str(tmp_path / "nope.pth"), "--out", str(tmp_path)]) == 2
    assert "nope.pth" in capsys.readouterr().err
