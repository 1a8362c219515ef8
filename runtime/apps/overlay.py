"""Overlay rendering: colored masks, contours, score labels and a depth-health badge (OpenCV).

Only instances at or above ``min_score`` are drawn (:data:`DRAW_MIN_SCORE` unless the caller passes its own,
e.g. calibnet-infer's ``--min-score``). Labels are placed best score first: each goes just above its instance's
box, else below it, else inside its top edge, moved down until it overlaps neither an earlier label nor the
badge, and is kept inside the image (:func:`overlay_layout` computes the boxes :func:`draw_overlay` draws).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.prediction import Prediction

__all__ = ["DRAW_MIN_SCORE", "OverlayLayout", "draw_overlay", "instance_color", "overlay_layout"]

DRAW_MIN_SCORE = 0.3  # the overlays' default minimum score, and the tracker's (what is drawn is what is tracked)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, end exclusive)
_FONT, _SCALE, _PAD = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 2
#: badge colors (RGB) of the depth-health verdicts
_VERDICT_COLORS = {"ok": (40, 160, 60), "degraded": (230, 140, 0), "unusable": (200, 30, 30)}


def instance_color(pred: Prediction, i: int) -> np.ndarray:
    """float32 RGB color of instance ``i``: by track ID when ``pred`` is tracked (the same object keeps its
    color across frames), else by rank; hues a golden angle apart, so neighbours in rank or ID differ."""
    key = i
    if pred.track_ids is not None and pred.track_ids[i] >= 0:
        key = int(pred.track_ids[i]) - 1
    r, g, b = colorsys.hsv_to_rgb((key * 0.381966) % 1.0, 0.85, 0.95)
    return np.array([r, g, b], np.float32) * 255


def _label(pred: Prediction, i: int) -> str:
    tid = int(pred.track_ids[i]) if pred.track_ids is not None else -1
    return f"#{tid} {pred.scores[i]:.2f}" if tid >= 0 else f"{pred.scores[i]:.2f}"


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _badge_text(pred: Prediction) -> str:
    """The depth-health verdict with the share of invalid depth pixels and the mean depth trust (the trust alone
    for a prediction without a depth health)."""
    with np.errstate(all="ignore"):
        trust = float(np.nanmean(pred.depth_trust)) if np.isfinite(pred.depth_trust).any() else float("nan")
    health = pred.depth_health
    if health is None:
        return f"depth trust {trust:.2f}"
    return f"depth {health.verdict}, {100 * health.invalid_share:.0f}% invalid, trust {trust:.2f}"


@dataclass(frozen=True)
class OverlayLayout:
    """What :func:`draw_overlay` draws: the instances (indices into the prediction, best score first), the box
    of each one's label, and the badge's box."""

    drawn: list[int]
    label_boxes: list[Box]
    labels: list[str]
    badge_box: Box


def _place(size: tuple[int, int], anchor: Box, hw: tuple[int, int], taken: list[Box]) -> Box | None:
    """The first free spot for a label box of ``hw`` (height, width) near ``anchor`` (the instance's box), or
    None when the image has none."""
    H, W = size
    h, w = hw
    if h > H or w > W:
        return None
    x = min(max(anchor[0], 0), max(W - w, 0))
    starts = [anchor[1] - h - 1, anchor[3] + 1, anchor[1]]
    for y0 in starts + list(range(0, max(H - h, 0) + 1, 2)):
        y = min(max(y0, 0), max(H - h, 0))
        for dx in (0, w + 4, -(w + 4)):
            xx = min(max(x + dx, 0), max(W - w, 0))
            box = (xx, y, xx + w, y + h)
            if not any(_overlaps(box, t) for t in taken):
                return box
    return None


def overlay_layout(pred: Prediction, min_score: float = DRAW_MIN_SCORE, max_instances: int = 10) -> OverlayLayout:
    """The instances :func:`draw_overlay` draws (score >= ``min_score``, at most ``max_instances``, best first)
    and where their labels go: inside the image, clear of each other and of the depth-health badge (when the
    image has room for them all; a label that finds no free spot is left out)."""
    order = [int(i) for i in np.argsort(-pred.scores, kind="stable") if pred.scores[i] >= min_score]
    drawn = order[:max_instances]
    (w, h), base = cv2.getTextSize(_badge_text(pred), _FONT, 0.5, 1)
    badge: Box = (4, 4, 4 + w + 10, 4 + h + base + 8)
    labels = [_label(pred, i) for i in drawn]
    taken: list[Box] = [badge]
    boxes: list[Box] = []
    for i, text in zip(drawn, labels):
        (w, h), base = cv2.getTextSize(text, _FONT, _SCALE, 2)
        anchor = tuple(int(v) for v in pred.boxes[i])
        box = _place(pred.image_hw, anchor, (h + base + 2 * _PAD, w + 2 * _PAD), taken)  # type: ignore[arg-type]
        if box is not None:
            taken.append(box)
        boxes.append(box or (0, 0, 0, 0))  # no free spot: no label
    return OverlayLayout(drawn, boxes, labels, badge)


def draw_overlay(rgb: np.ndarray, pred: Prediction, alpha: float = 0.5, max_instances: int = 10,
                 min_score: float = DRAW_MIN_SCORE) -> np.ndarray:
    """uint8 RGB image with the prediction drawn on ``rgb`` (uint8 [H,W,3] RGB): the instances at or above
    ``min_score`` (see :func:`overlay_layout`); tracked instances are colored and labelled by track ID."""
    layout = overlay_layout(pred, min_score, max_instances)
    out = rgb.astype(np.float32).copy()
    for i in reversed(layout.drawn):  # the best on top
        mask = pred.masks[i]
        out[mask] = out[mask] * (1 - alpha) + instance_color(pred, i) * alpha
    out_u8 = np.ascontiguousarray(out.clip(0, 255).astype(np.uint8))
    for i in layout.drawn:
        color = tuple(int(c) for c in instance_color(pred, i))
        contours, _ = cv2.findContours(pred.masks[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out_u8, contours, -1, color, 2)
    for i, box, text in zip(layout.drawn, layout.label_boxes, layout.labels):
        if box[2] > box[0]:
            color = tuple(int(c) for c in instance_color(pred, i))
            cv2.rectangle(out_u8, box[:2], (box[2] - 1, box[3] - 1), (0, 0, 0), -1)
            (_, h), _ = cv2.getTextSize(text, _FONT, _SCALE, 2)
            cv2.putText(out_u8, text, (box[0] + _PAD, box[1] + _PAD + h), _FONT, _SCALE, color, 1, cv2.LINE_AA)
    _draw_badge(out_u8, pred, layout.badge_box)
    return out_u8


def _draw_badge(img: np.ndarray, pred: Prediction, box: Box) -> None:
    """The depth-health badge in the top-left corner, on the verdict's color (ok green, degraded orange,
    unusable red; black without a depth health)."""
    text = _badge_text(pred)
    color = (0, 0, 0) if pred.depth_health is None else _VERDICT_COLORS[pred.depth_health.verdict]
    cv2.rectangle(img, box[:2], (box[2] - 1, box[3] - 1), color, -1)
    (_, h), _ = cv2.getTextSize(text, _FONT, 0.5, 1)
    cv2.putText(img, text, (box[0] + 5, box[1] + 4 + h), _FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
