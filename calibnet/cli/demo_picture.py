"""The demo's picture: what proves that the exported pipeline works (calibnet-demo).

A 2 x 2 grid and a caption: the scene's RGB and depth on top; below, the same instance (the best-scored one of
the reference) as PyTorch decodes it and as the torch-free runtime decodes it, in solid :data:`REFERENCE_COLOR`
and :data:`RUNTIME_COLOR` over the dimmed gray scene, the pixels where the two differ in :data:`DIFF_COLOR`.
The caption gives the mask agreement, the stage timings and what the weights are.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibnet.runtime.core.prediction import Prediction

__all__ = ["REFERENCE_COLOR", "RUNTIME_COLOR", "DIFF_COLOR", "CAPTION_H", "compare_picture", "panel"]

REFERENCE_COLOR = (60, 200, 90)  # RGB
RUNTIME_COLOR = (40, 130, 240)
DIFF_COLOR = (240, 30, 30)
CAPTION_H = 22  # pixels per caption line


def _title(img: np.ndarray, text: str) -> None:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(img, (0, 0), (w + 10, h + base + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (5, h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def _mask_panel(gray: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], diff: np.ndarray | None,
                title: str) -> np.ndarray:
    out = np.repeat(gray[:, :, None], 3, axis=2)
    out[mask] = color
    if diff is not None:
        out[diff] = DIFF_COLOR
    _title(out, title)
    return out


def panel(picture: np.ndarray, row: int, col: int, hw: tuple[int, int]) -> np.ndarray:
    """The panel at ``row``, ``col`` of a :func:`compare_picture` of frames of size ``hw``."""
    h, w = hw
    return picture[row * h:(row + 1) * h, col * w:(col + 1) * w]


def compare_picture(rgb: np.ndarray, depth: np.ndarray, reference: Prediction, result: Prediction,
                    caption: list[str]) -> np.ndarray:
    """uint8 RGB picture [2H + lines, 2W, 3] of one frame (``rgb`` uint8 [H,W,3], ``depth`` uint8 [H,W]) comparing
    the best-scored instance of ``reference`` (PyTorch) with the same rank in ``result`` (the runtime)."""
    h, w = rgb.shape[:2]
    gray = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) * 0.4).astype(np.uint8)
    empty = np.zeros((h, w), bool)
    ref = reference.masks[0] if len(reference) else empty
    got = result.masks[0] if len(result) else empty
    diff = ref ^ got
    top = [rgb.copy(), np.repeat(depth[:, :, None], 3, axis=2)]
    _title(top[0], "scene (RGB)")
    _title(top[1], "depth (near = dark)")
    score = f" {reference.scores[0]:.2f}" if len(reference) else ": none"
    bottom = [_mask_panel(gray, ref, REFERENCE_COLOR, None, f"PyTorch: instance 1, score{score}"),
              _mask_panel(gray, got, RUNTIME_COLOR, diff, f"runtime (ONNX): instance 1, {int(diff.sum())} px differ")]
    grid = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    strip = np.zeros((CAPTION_H * len(caption) + 6, 2 * w, 3), np.uint8)
    for k, line in enumerate(caption):
        cv2.putText(strip, line, (6, CAPTION_H * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.concatenate([grid, strip], axis=0)
