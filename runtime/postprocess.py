"""NMS-free post-processing of the official ``CalibNet.inference`` in vectorized numpy / OpenCV.

score = sqrt(sigmoid(class logit) * sigmoid(objectness)); keep score > threshold; at most
``max_detections`` (top-k); rescoring by the mean mask probability inside the binarized mask; masks
upsampled to the padded input, cropped to the resized image, resized to the original size (bilinear,
``align_corners=False`` as ``F.interpolate``) and binarized. Only kept masks are resized, the sigmoid is
taken only of kept masks, and each resize is one OpenCV call on a float32 plane (OpenCV's INTER_LINEAR
uses the same half-pixel source mapping as ``F.interpolate(..., align_corners=False)`` without antialiasing).

Two graph kinds are decoded: full outputs (``pred_logits``, ``pred_scores``, ``pred_masks`` logits) with
:func:`select_instances`, and in-graph top-k outputs (``scores`` with -1 for dropped kernels, ``masks``
probabilities, ``keep_index``) with :func:`select_topk`.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["sigmoid", "select_instances", "select_topk", "rescore", "decode_masks", "Selection"]

Selection = tuple[np.ndarray, np.ndarray, np.ndarray]  # kernel indices [K], scores [K], mask probabilities [K,h,w]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32, without overflow warnings (inputs clipped to +-88)."""
    x = np.clip(np.asarray(x, dtype=np.float32), -88.0, 88.0)
    out = np.exp(-x)
    out += 1.0
    return np.reciprocal(out, out=out)


def rescore(probs: np.ndarray, mask_threshold: float) -> np.ndarray:
    """Mean probability inside each mask binarized at ``mask_threshold``: [K,h,w] -> [K] float32."""
    if len(probs) == 0:
        return np.zeros(0, np.float32)
    flat = probs.reshape(len(probs), -1)
    inside = flat > mask_threshold
    total = np.where(inside, flat, 0.0).sum(1, dtype=np.float64)
    return (total / (inside.sum(1) + 1e-6)).astype(np.float32)


def select_instances(logits: np.ndarray, objectness: np.ndarray, mask_logits: np.ndarray, cls_threshold: float,
                     mask_threshold: float, max_detections: int) -> Selection:
    """One image of a full-output graph: (kept kernel indices [K], rescored scores [K], mask probabilities [K,h,w]).

    Kept instances are in kernel-index order, as the official code returns them; at most
    ``max_detections`` (highest scores) are kept.
    """
    scores = np.sqrt(sigmoid(logits[:, 0]) * sigmoid(objectness[:, 0]))
    keep = np.nonzero(scores > cls_threshold)[0]
    if len(keep) > max_detections:
        keep = np.sort(keep[np.argsort(-scores[keep], kind="stable")[:max_detections]])
    probs = sigmoid(mask_logits[keep])
    return keep, (scores[keep] * rescore(probs, mask_threshold)).astype(np.float32), probs


def select_topk(scores: np.ndarray, probs: np.ndarray, keep_index: np.ndarray, max_detections: int,
                below_threshold: float = -1.0) -> Selection:
    """One image of a top-k graph: drop entries flagged ``below_threshold`` (kernels the official
    threshold removes), keep at most ``max_detections`` (the graph sorts by pre-rescoring score), and
    return them in kernel-index order like :func:`select_instances`."""
    valid = np.nonzero(scores > below_threshold)[0][:max_detections]
    order = np.argsort(keep_index[valid], kind="stable")
    valid = valid[order]
    return (keep_index[valid].astype(np.int64), scores[valid].astype(np.float32),
            np.asarray(probs[valid], dtype=np.float32))


def _resize_plane(plane: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if plane.shape == tuple(hw):
        return plane
    return cv2.resize(plane, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def decode_masks(probs: np.ndarray, padded_hw: tuple[int, int], resized_hw: tuple[int, int],
                 original_hw: tuple[int, int], mask_threshold: float) -> np.ndarray:
    """[K,h',w'] mask probabilities at 1/stride -> bool [K,H0,W0] at the original size.

    Same steps as the official code: resize to the padded input size, crop the padding, resize to the
    original size, binarize (``> mask_threshold``).
    """
    K = len(probs)
    out = np.empty((K, *original_hw), dtype=bool)
    rh, rw = resized_hw
    for k in range(K):
        full = _resize_plane(np.ascontiguousarray(probs[k], dtype=np.float32), padded_hw)
        crop = np.ascontiguousarray(full[:rh, :rw])
        np.greater(_resize_plane(crop, original_hw), mask_threshold, out=out[k])
    return out
