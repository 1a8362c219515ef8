"""Overlay rendering: colored masks, contours, score labels and a depth-trust badge (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from ..core.prediction import Prediction

__all__ = ["draw_overlay", "instance_color"]

_PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                     [145, 30, 180], [70, 240, 240], [240, 50, 230]], np.float32)


def instance_color(pred: Prediction, i: int) -> np.ndarray:
    """float32 RGB color of instance ``i``: by track ID when ``pred`` is tracked (the same object keeps its
    color across frames), else by rank."""
    key = i
    if pred.track_ids is not None and pred.track_ids[i] >= 0:
        key = int(pred.track_ids[i]) - 1
    return _PALETTE[key % len(_PALETTE)]


def draw_overlay(rgb: np.ndarray, pred: Prediction, alpha: float = 0.5, max_instances: int = 10) -> np.ndarray:
    """uint8 RGB image with the prediction drawn on ``rgb`` (uint8 [H,W,3] RGB); tracked instances are
    colored and labelled by track ID."""
    out = rgb.astype(np.float32).copy()
    n = min(len(pred), max_instances)
    for i in range(n):
        mask = pred.masks[i]
        out[mask] = out[mask] * (1 - alpha) + instance_color(pred, i) * alpha
    out_u8 = np.ascontiguousarray(out.clip(0, 255).astype(np.uint8))
    for i in range(n):
        mask, score, box = pred.masks[i], pred.scores[i], pred.boxes[i]
        color = tuple(int(c) for c in instance_color(pred, i))
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out_u8, contours, -1, color, 2)
        x, y = int(box[0]), max(int(box[1]) - 4, 12)
        tid = int(pred.track_ids[i]) if pred.track_ids is not None else -1
        label = f"#{tid} {score:.2f}" if tid >= 0 else f"{score:.2f}"
        cv2.putText(out_u8, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(out_u8, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    trust = float(np.nanmean(pred.depth_trust)) if len(pred.depth_trust) else float("nan")
    badge = f"depth trust {trust:.2f}"
    cv2.rectangle(out_u8, (4, 4), (170, 26), (0, 0, 0), -1)
    cv2.putText(out_u8, badge, (9, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out_u8
