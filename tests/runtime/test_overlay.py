"""The overlay draws only instances at or above its minimum score, with labels that never cover each other."""

from __future__ import annotations

import numpy as np

from calibnet.runtime.apps.overlay import DRAW_MIN_SCORE, draw_overlay, instance_color, overlay_layout
from calibnet.runtime.core.postprocess import masks_to_boxes
from calibnet.runtime.core.prediction import Prediction


def _overlapping_pred() -> Prediction:
    """Six instances on top of one another near the top-left corner (under the badge), sorted by score as every
    Prediction is, low- and high-score ones interleaved in space."""
    masks = np.zeros((6, 100, 200), bool)
    for k, pos in enumerate([1, 3, 4, 5, 0, 2]):
        masks[k, 2 + pos: 40 + pos, 3 + 2 * pos: 60 + 2 * pos] = True
    scores = np.array([0.9, 0.6, 0.31, 0.29, 0.05, 0.02], np.float32)
    return Prediction(masks, scores, masks_to_boxes(masks), np.full(3, 0.8, np.float32), np.arange(6))


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_nothing_below_the_threshold_is_drawn_and_labels_never_overlap():
    pred = _overlapping_pred()
    layout = overlay_layout(pred, min_score=DRAW_MIN_SCORE)
    assert layout.drawn == [0, 1, 2]  # best first, 0.29 and below left out
    boxes = layout.label_boxes + [layout.badge_box]
    assert all(b[2] > b[0] for b in layout.label_boxes)  # every drawn instance found a spot for its label
    for i, a in enumerate(boxes):
        assert min(a[0], a[1]) >= 0 and a[2] <= 200 and a[3] <= 100  # inside the image
        assert not any(_overlap(a, b) for b in boxes[i + 1:])
    img = np.full((100, 200, 3), 128, np.uint8)
    out = draw_overlay(img, pred)
    keep = [0, 1, 2]
    high = Prediction(pred.masks[keep], pred.scores[keep], pred.boxes[keep], pred.depth_trust, pred.kernel_index[keep])
    assert np.array_equal(out, draw_overlay(img, high))  # the low-score instances leave no trace
    assert not np.array_equal(out[pred.masks[0]], img[pred.masks[0]])


def test_the_callers_threshold_is_respected():
    pred = _overlapping_pred()
    assert overlay_layout(pred, min_score=0.0).drawn == [0, 1, 2, 3, 4, 5]
    assert overlay_layout(pred, min_score=0.6).drawn == [0, 1]
    assert overlay_layout(pred, min_score=0.95).drawn == []
    img = np.full((100, 200, 3), 128, np.uint8)
    bare = draw_overlay(img, pred, min_score=0.95)
    x0, y0, x1, y1 = overlay_layout(pred).badge_box
    outside = np.ones((100, 200), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(bare[outside], img[outside])  # only the badge


def test_each_instance_its_own_color():
    pred = _overlapping_pred()
    colors = {tuple(instance_color(pred, i).astype(int)) for i in range(len(pred))}
    assert len(colors) == len(pred)


def test_the_badge_shows_the_depth_health_on_its_verdicts_color():
    from calibnet.runtime.apps import overlay
    from calibnet.runtime.core.depth_health import DepthHealth

    pred = _overlapping_pred()
    img = np.full((100, 300, 3), 128, np.uint8)
    corner = draw_overlay(img, pred, min_score=0.95)[5, 5]
    assert corner.tolist() == [0, 0, 0]  # no depth health: the trust alone, on black
    for verdict, share in (("ok", 0.0), ("degraded", 0.07), ("unusable", 0.5)):
        pred.depth_health = DepthHealth(share, tuple(float(t) for t in pred.depth_trust), verdict)
        out = draw_overlay(img, pred, min_score=0.95)
        assert out[5, 5].tolist() == list(overlay._VERDICT_COLORS[verdict])
        trust = float(np.mean(pred.depth_trust))
        assert overlay._badge_text(pred) == f"depth {verdict}, {100 * share:.0f}% invalid, trust {trust:.2f}"
    x0, y0, x1, y1 = overlay_layout(pred).badge_box
    assert x1 - x0 > 200  # the longer text widens the badge, and the labels keep clear of it
