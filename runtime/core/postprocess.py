"""NMS-free post-processing of the official ``CalibNet.inference`` in vectorized numpy / OpenCV.

score = sqrt(sigmoid(class logit) * sigmoid(objectness)); keep score > threshold; at most
``max_detections`` (top-k); rescoring by the mean mask probability inside the binarized mask; masks
upsampled to the padded input, cropped to the resized image, resized to the original size (bilinear,
``align_corners=False`` as ``F.interpolate``) and binarized.

What makes it cheap (each step gives the official result; tests/test_postprocess.py checks the fast path
bit for bit against the plain steps, tests/test_postprocess_bench.py against the official torch code):
only kept masks get a sigmoid and are resized; sigmoid, thresholding and row sums are single SIMD OpenCV
passes (``cv2.exp``, ``cv2.threshold``, ``cv2.reduce``); the first (integer-factor) upsample covers only
the source rows/columns that reach the crop; a mask whose probabilities are all above (below) the
threshold there is all True (False) without resizing, bilinear resizes being convex combinations; each
remaining resize is one OpenCV call on a float32 plane (OpenCV's INTER_LINEAR uses the same half-pixel
source mapping as ``F.interpolate(..., align_corners=False)``, without antialiasing). Stacking the masks as
channels of one ``cv2.resize`` call was measured slower than plane by plane (OpenCV 5, 50 masks).

Two graph kinds are decoded: full outputs (``pred_logits``, ``pred_scores``, ``pred_masks`` logits) with
:func:`select_instances`, and in-graph top-k outputs (``scores`` with -1 for dropped kernels, ``masks``
probabilities, ``keep_index``) with :func:`select_topk`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .contract import ModelMetadata
from .depth_health import DepthHealthRule, assess_depth
from .prediction import Prediction

__all__ = ["sigmoid", "select_instances", "select_topk", "rescore", "decode_masks_and_boxes", "mask_box",
           "masks_to_boxes", "decode_prediction", "instance_depths", "Selection"]

Selection = tuple[np.ndarray, np.ndarray, np.ndarray]  # kernel indices [K], scores [K], mask probabilities [K,h,w]


def _sigmoid_into(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Logistic function of float32 ``x`` written into the contiguous float32 array ``a`` (may be ``x``)."""
    np.negative(x, out=a)
    if a.size:
        flat = a.reshape(1, -1)
        cv2.exp(flat, dst=flat)
    a += 1.0
    return np.reciprocal(a, out=a)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32 (OpenCV's SIMD exp: relative error ~1e-7; no overflow warnings, +-inf
    saturate to 1 and 0)."""
    a = np.array(x, dtype=np.float32)
    return _sigmoid_into(a, a)


def _row_sums(a: np.ndarray) -> np.ndarray:
    """float64 sums of the rows of a float32 [K,n] array (OpenCV, one pass)."""
    return cv2.reduce(a, 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F)[:, 0]


def rescore(probs: np.ndarray, mask_threshold: float) -> np.ndarray:
    """Mean probability inside each mask binarized at ``mask_threshold``: [K,h,w] -> [K] float32."""
    if len(probs) == 0:
        return np.zeros(0, np.float32)
    flat = np.ascontiguousarray(probs, dtype=np.float32).reshape(len(probs), -1)
    _, inside = cv2.threshold(flat, mask_threshold, 0.0, cv2.THRESH_TOZERO)  # p where p > threshold, else 0
    total = _row_sums(inside)
    cv2.threshold(flat, mask_threshold, 1.0, cv2.THRESH_BINARY, dst=inside)  # 1 where p > threshold
    return (total / (_row_sums(inside) + 1e-6)).astype(np.float32)


def select_instances(logits: np.ndarray, objectness: np.ndarray, mask_logits: np.ndarray, cls_threshold: float,
                     mask_threshold: float, max_detections: int) -> Selection:
    """One image of a full-output graph: (kept kernel indices [K], rescored scores [K], mask probabilities [K,h,w]).

    Kept instances are in kernel-index order, as the official code returns them; at most
    ``max_detections`` (highest scores) are kept. The sigmoid is taken of the kept masks only.
    """
    scores = np.sqrt(sigmoid(logits[:, 0]) * sigmoid(objectness[:, 0]))
    keep = np.nonzero(scores > cls_threshold)[0]
    if len(keep) > max_detections:
        keep = np.sort(keep[np.argsort(-scores[keep], kind="stable")[:max_detections]])
    logits32 = np.asarray(mask_logits, dtype=np.float32)
    probs = np.empty((len(keep), *logits32.shape[1:]), np.float32)
    if len(keep) == len(logits32):  # all kept (e.g. untrained weights): no gather
        _sigmoid_into(logits32, probs)
    else:
        np.take(logits32, keep, axis=0, out=probs)
        _sigmoid_into(probs, probs)
    return keep, (scores[keep] * rescore(probs, mask_threshold)).astype(np.float32), probs


def select_topk(scores: np.ndarray, probs: np.ndarray, keep_index: np.ndarray, max_detections: int,
                below_threshold: float = -1.0) -> Selection:
    """One image of a top-k graph: drop entries flagged ``below_threshold`` (kernels the official
    threshold removes), keep at most ``max_detections`` (the graph sorts by pre-rescoring score), and
    return them in kernel-index order like :func:`select_instances`."""
    valid = np.nonzero(scores > below_threshold)[0][:max_detections]
    valid = valid[np.argsort(keep_index[valid], kind="stable")]
    return (keep_index[valid].astype(np.int64), scores[valid].astype(np.float32),
            np.asarray(probs[valid], dtype=np.float32))


def _resize_plane(plane: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if plane.shape == tuple(hw):
        return plane
    return cv2.resize(plane, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def _source_crop(src_len: int, padded_len: int, keep_len: int) -> tuple[int, int]:
    """(source rows to resize, their upsampled size) such that upsampling only those rows by the same
    integer factor gives the first ``keep_len`` rows of the full upsample exactly; the full sizes when the
    factor is not an integer."""
    factor, rem = divmod(padded_len, src_len)
    if rem or factor < 1:
        return src_len, padded_len
    # output row i < keep_len reads source rows floor((i + 0.5) / f - 0.5) and the one after: all below
    # keep_len // f + 2, so a crop that long never reaches the bottom clamp of its own resize
    n = min(src_len, keep_len // factor + 2)
    return n, n * factor


_UNIFORM_MARGIN = 1e-6  # a bilinear mix of values all above (below) t + margin (t - margin) stays above (below) t


def decode_masks_and_boxes(probs: np.ndarray, padded_hw: tuple[int, int], resized_hw: tuple[int, int],
                           original_hw: tuple[int, int], mask_threshold: float,
                           order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[K,h',w'] mask probabilities at 1/stride -> bool [K,H0,W0] at the original size, and their boxes (float32
    [K,4]: :func:`mask_box`, found per mask while it is decoded; trivial for uniform masks).

    Same steps as the official code: resize to the padded input size, crop the padding, resize to the
    original size, binarize (``> mask_threshold``); bilinear resizes are convex combinations, so a mask
    whose probabilities are all above (below) the threshold in the region that reaches the crop is all
    True (False) without resizing. Only the source rows/columns that reach the crop are upsampled.
    ``order``: decode ``probs[order]`` (without copying the probabilities)."""
    index = np.arange(len(probs)) if order is None else np.asarray(order)
    K = len(index)
    H0, W0 = original_hw
    out = np.empty((K, H0, W0), dtype=bool)
    boxes = np.zeros((K, 4), np.float32)
    if K == 0:
        return out, boxes
    rh, rw = resized_hw
    sh, uh = _source_crop(probs.shape[1], padded_hw[0], rh)
    sw, uw = _source_crop(probs.shape[2], padded_hw[1], rw)
    for k, i in enumerate(index):
        src = probs[i, :sh, :sw]  # a view: OpenCV takes row-strided planes as they are
        if src.dtype != np.float32:
            src = src.astype(np.float32)
        lo, hi, _, _ = cv2.minMaxLoc(src)
        if lo > mask_threshold + _UNIFORM_MARGIN or hi < mask_threshold - _UNIFORM_MARGIN:
            full = lo > mask_threshold
            out[k] = full
            if full:
                boxes[k] = (0, 0, W0, H0)
            continue
        up = _resize_plane(src, (uh, uw))
        np.greater(_resize_plane(up[:rh, :rw], original_hw), mask_threshold, out=out[k])
        boxes[k] = mask_box(out[k])
    return out, boxes


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The box of a bool [H,W] mask: (x0, y0, x1, y1) at pixel edges; zeros for an empty mask (the one box rule)."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    return (x, y, x + w, y + h) if w else (0, 0, 0, 0)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """float32 [K,4] boxes of bool [K,H,W] masks (:func:`mask_box`)."""
    return np.array([mask_box(m) for m in masks], np.float32).reshape(len(masks), 4)


_DEPTH_SAMPLES = 16384  # pixels of a box read for an instance's depth (a grid over larger boxes)


def instance_depths(masks: np.ndarray, boxes: np.ndarray, depth_u8: np.ndarray) -> np.ndarray:
    """float32 [K]: the median of ``depth_u8`` [H,W] inside each bool mask [K,H,W]; only the mask's box is read,
    on a regular grid of at most ~16k pixels for larger boxes (all pixels of a mask the grid misses); NaN for an
    empty mask."""
    out = np.full(len(masks), np.nan, np.float32)
    for k, (mask, box) in enumerate(zip(masks, boxes)):
        x0, y0, x1, y1 = (int(v) for v in box)
        step = max(1, int(np.ceil(np.sqrt((y1 - y0) * (x1 - x0) / _DEPTH_SAMPLES))))
        values = depth_u8[y0:y1:step, x0:x1:step][mask[y0:y1:step, x0:x1:step]]
        if not values.size and step > 1:
            values = depth_u8[y0:y1, x0:x1][mask[y0:y1, x0:x1]]
        if values.size:
            out[k] = np.median(values)
    return out


def decode_prediction(out: dict[str, np.ndarray], b: int, padded_hw: tuple[int, int], resized_hw: tuple[int, int],
                      original_hw: tuple[int, int], meta: ModelMetadata, depth_u8: np.ndarray | None = None,
                      invalid_share: float = float("nan"), health_rule: DepthHealthRule | None = None) -> Prediction:
    """The Prediction of batch item ``b`` from a graph's outputs (full-output or top-k graph), sorted by score.
    With the frame's 8-bit depth at ``original_hw`` it also gives each instance's depth (:func:`instance_depths`)
    and the frame's depth health (from ``invalid_share``, the depth-trust output and ``health_rule``)."""
    if "keep_index" in out:  # in-graph top-k selection
        below = float(meta.extra.get("topk_below_threshold_score", -1.0))
        keep, scores, probs = select_topk(out["scores"][b], out["masks"][b], out["keep_index"][b],
                                          meta.max_detections, below)
    else:
        keep, scores, probs = select_instances(out["pred_logits"][b], out["pred_scores"][b], out["pred_masks"][b],
                                               meta.cls_threshold, meta.mask_threshold, meta.max_detections)
    order = np.argsort(-scores, kind="stable")
    masks, boxes = decode_masks_and_boxes(probs, padded_hw, resized_hw, original_hw, meta.mask_threshold, order)
    trust = out["depth_trust"][b].astype(np.float32) if "depth_trust" in out else np.full(3, np.nan, np.float32)
    pred = Prediction(masks=masks, scores=scores[order], boxes=boxes, depth_trust=trust,
                      kernel_index=keep[order].astype(np.int64))
    if depth_u8 is not None and depth_u8.shape == tuple(original_hw):
        pred.instance_depth = instance_depths(masks, boxes, depth_u8)
        pred.depth_health = assess_depth(invalid_share, trust, health_rule)
    return pred
