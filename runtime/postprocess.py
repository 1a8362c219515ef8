"""NMS-free post-processing of the official ``CalibNet.inference`` in vectorized numpy.

score = sqrt(sigmoid(class logit) * sigmoid(objectness)); keep score > threshold; rescoring by the mean
mask probability inside the binarized mask; masks upsampled to the padded input, cropped to the resized
image, resized to the original size (bilinear, align_corners=False) and binarized. The two resizes and the
crop are composed into one matrix per axis and applied only to kept masks.
"""

from __future__ import annotations

import numpy as np

from .resize import torch_bilinear_matrix

__all__ = ["sigmoid", "select_instances", "decode_masks"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in float32."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def select_instances(logits: np.ndarray, objectness: np.ndarray, mask_logits: np.ndarray, cls_threshold: float,
                     mask_threshold: float, max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: (kept kernel indices [K], rescored scores [K], mask probabilities [K,h,w]).

    Kept instances are in kernel-index order, as the official code returns them; at most
    ``max_detections`` (highest scores) are kept.
    """
    scores = np.sqrt(sigmoid(logits[:, 0]) * sigmoid(objectness[:, 0]))
    keep = np.nonzero(scores > cls_threshold)[0]
    if len(keep) > max_detections:
        keep = np.sort(keep[np.argsort(-scores[keep], kind="stable")[:max_detections]])
    probs = sigmoid(mask_logits[keep])
    binary = probs > mask_threshold
    rescore = (probs * binary).sum((1, 2)) / (binary.sum((1, 2)) + 1e-6)
    return keep, (scores[keep] * rescore).astype(np.float32), probs


def decode_masks(probs: np.ndarray, padded_hw: tuple[int, int], resized_hw: tuple[int, int],
                 original_hw: tuple[int, int], mask_threshold: float) -> np.ndarray:
    """[K,h',w'] mask probabilities at 1/stride -> bool [K,H0,W0] at the original size."""
    K, mh, mw = probs.shape
    if K == 0:
        return np.zeros((0, *original_hw), dtype=bool)
    ah = torch_bilinear_matrix(resized_hw[0], original_hw[0]) @ torch_bilinear_matrix(mh, padded_hw[0])[: resized_hw[0]]
    aw = torch_bilinear_matrix(resized_hw[1], original_hw[1]) @ torch_bilinear_matrix(mw, padded_hw[1])[: resized_hw[1]]
    full = np.matmul(np.matmul(ah[None], probs.astype(np.float32)), aw.T[None])
    return full > mask_threshold
