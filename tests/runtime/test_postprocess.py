"""The fast mask decoding (crop-first upsampling, uniform-mask shortcut, OpenCV sigmoid/rescoring) equals the
straightforward form of the official steps, and the selection keeps what the official rule keeps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibnet.runtime.core.postprocess import (
    _source_crop,
    decode_masks_and_boxes,
    masks_to_boxes,
    rescore,
    select_instances,
    sigmoid,
)


def naive_decode(probs, padded_hw, resized_hw, original_hw, t):
    """Resize every mask to the padded size, crop, resize to the original size, binarize (no shortcuts)."""
    out = []
    for p in probs:
        full = cv2.resize(np.ascontiguousarray(p), (padded_hw[1], padded_hw[0]), interpolation=cv2.INTER_LINEAR)
        crop = np.ascontiguousarray(full[: resized_hw[0], : resized_hw[1]])
        out.append(cv2.resize(crop, (original_hw[1], original_hw[0]), interpolation=cv2.INTER_LINEAR) > t)
    return np.stack(out) if out else np.zeros((0, *original_hw), bool)


@pytest.mark.parametrize("seed", range(8))
def test_decode_equals_the_naive_official_steps_exactly(seed):
    g = np.random.default_rng(seed)
    mh, mw = (int(v) for v in g.integers(6, 60, 2))
    padded = (2 * mh, 2 * mw)
    resized = (int(g.integers(max(1, mh - 3), padded[0] + 1)), int(g.integers(max(1, mw - 3), padded[1] + 1)))
    original = (int(g.integers(20, 300)), int(g.integers(20, 300)))
    probs = (1 / (1 + np.exp(-3 * g.normal(size=(6, mh, mw))))).astype(np.float32)
    probs[1] = 0.9  # uniform above the threshold: shortcut
    probs[2] = 0.1  # uniform below: shortcut
    probs[3] = 0.45 + g.normal(0, 1e-7, (mh, mw)).astype(np.float32)  # hugging the threshold: no shortcut
    probs[4, resized[0] // 2 + 2:, :] = 0.99  # a different value only in rows the crop never reaches
    got = decode_masks_and_boxes(probs, padded, resized, original, 0.45)[0]
    assert np.array_equal(got, naive_decode(probs, padded, resized, original, 0.45))
    assert got[1].all() and not got[2].any()
    order = np.array([4, 0, 3])
    assert np.array_equal(decode_masks_and_boxes(probs, padded, resized, original, 0.45, order=order)[0], got[order])
    masks, boxes = decode_masks_and_boxes(probs, padded, resized, original, 0.45)
    assert np.array_equal(masks, got) and np.array_equal(boxes, masks_to_boxes(got))
    assert tuple(boxes[1]) == (0, 0, original[1], original[0]) and not boxes[2].any()


def test_source_crop_only_for_integer_factors():
    assert _source_crop(160, 320, 320) == (160, 320)
    assert _source_crop(160, 320, 101) == (52, 104)
    assert _source_crop(7, 15, 15) == (7, 15)  # not an integer factor: no crop


def test_sigmoid_and_rescore_match_float64_references():
    g = np.random.default_rng(0)
    x = g.normal(0, 6, (5, 30, 40)).astype(np.float32)
    x[0, 0, :4] = [-1e4, 1e4, np.inf, -np.inf]
    p = sigmoid(x)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert p.dtype == np.float32 and np.abs(p - ref).max() < 1e-6
    inside = ref > 0.45
    want = (np.where(inside, ref, 0).sum((1, 2)) / (inside.sum((1, 2)) + 1e-6))
    np.testing.assert_allclose(rescore(p, 0.45), want, rtol=1e-5)
    assert rescore(np.full((1, 4, 4), 0.2, np.float32), 0.45)[0] == 0.0


def test_selection_keeps_the_official_set_in_kernel_order():
    g = np.random.default_rng(1)
    logits = g.normal(-4, 3, (40, 1)).astype(np.float32)
    obj = g.normal(0, 2, (40, 1)).astype(np.float32)
    masks = g.normal(0, 2, (40, 8, 10)).astype(np.float32)
    score = np.sqrt(1 / (1 + np.exp(-logits[:, 0].astype(np.float64))) / (1 + np.exp(-obj[:, 0].astype(np.float64))))
    keep, scores, probs = select_instances(logits, obj, masks, 0.005, 0.45, 50)
    assert np.array_equal(keep, np.nonzero(score > 0.005)[0])
    assert probs.shape == (len(keep), 8, 10) and np.allclose(probs, sigmoid(masks[keep]))
    top = select_instances(logits, obj, masks, 0.005, 0.45, 5)[0]
    assert np.array_equal(top, np.sort(np.argsort(-score)[:5]))


def test_instance_depths_are_mask_medians():
    from calibnet.runtime.core.postprocess import instance_depths, masks_to_boxes

    rng = np.random.default_rng(0)
    depth = rng.integers(0, 256, (300, 400)).astype(np.uint8)
    masks = np.zeros((3, 300, 400), bool)
    masks[0, 10:40, 20:90] = True  # small: every pixel
    masks[1, 50:290, 10:390] = True  # large: a grid of ~16k pixels
    depth[50:290, 10:390] = 77 + (rng.random((240, 380)) < 0.3)  # median 77 whatever the grid
    got = instance_depths(masks, masks_to_boxes(masks), depth)
    assert got[0] == np.median(depth[10:40, 20:90]) and got[1] == 77.0 and np.isnan(got[2])
    thin = np.zeros((1, 300, 400), bool)
    thin[0, 100, 5:395] = True
    thin[0, 299, 399] = True  # a box over the whole frame, a mask the grid misses
    assert instance_depths(thin, masks_to_boxes(thin), depth)[0] == np.median(depth[thin[0]])
