"""Hungarian matcher: assignments on hand-built scores, the official score formula, resampled targets."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibnet.training.matcher import HungarianMatcher, assign, dice_score_matrix, resize_targets  # noqa: E402


def test_assign_maximizes_total_score_not_greedy():
    # greedy would take (0, 0) = 0.9 and then (1, 1) = 0.1 (total 1.0); the optimum is 0.8 + 0.7 = 1.5
    scores = np.array([[0.9, 0.8],
                       [0.7, 0.1],
                       [0.0, 0.0]])
    [(rows, cols)] = assign([scores])
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 1: 0}


def test_assign_every_target_once_and_empty_images():
    rng = np.random.default_rng(0)
    scores = rng.random((10, 3))
    out = assign([scores, np.zeros((10, 0))])
    rows, cols = out[0]
    assert sorted(cols.tolist()) == [0, 1, 2] and len(set(rows.tolist())) == 3
    # brute force over all injective maps of 3 targets into 10 predictions
    import itertools

    best = max(sum(scores[p, t] for t, p in enumerate(perm)) for perm in itertools.permutations(range(10), 3))
    assert scores[rows.numpy(), cols.numpy()].sum() == pytest.approx(best)
    assert out[1][0].numel() == 0 and out[1][1].numel() == 0


def test_dice_score_matrix_is_the_official_formula():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0], [-3.0, 3.0, 0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.25, 0.75, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    got = dice_score_matrix(logits, targets)
    p = logits.sigmoid()
    for i in range(2):
        for j in range(3):
            want = 2 * (p[i] * targets[j]).sum() / ((p[i] ** 2).sum() + (targets[j] ** 2).sum() + 1e-4)
            assert got[i, j].item() == pytest.approx(want.item(), rel=1e-6)


def _disc(h, w, cy, cx, r):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).float()


def test_matcher_pairs_masks_with_their_predictions_and_uses_class_probability():
    h, w = 24, 32
    t = torch.stack([_disc(h, w, 6, 8, 4), _disc(h, w, 16, 24, 5)])
    pred = torch.full((1, 4, h, w), -8.0)
    pred[0, 3] = t[0] * 16 - 8  # prediction 3 reproduces target 0
    pred[0, 1] = t[1] * 16 - 8  # prediction 1 reproduces target 1
    pred[0, 2] = t[1] * 16 - 8  # prediction 2 too, but with a lower class probability
    logits = torch.tensor([[[0.0], [2.0], [-4.0], [0.0]]])
    matcher = HungarianMatcher(0.8, 0.2)
    [(rows, cols)] = matcher(logits, pred, [t])
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 3, 1: 1}
    [scores] = matcher.score_matrices(logits, pred, [t])
    dice = dice_score_matrix(pred[0].flatten(1), t.flatten(1))
    want = dice ** 0.8 * logits[0].sigmoid() ** 0.2
    assert torch.allclose(scores, want, atol=1e-6)


def test_resize_targets_is_bilinear_average_at_half_resolution():
    m = torch.zeros(1, 8, 8)
    m[0, :4, :4] = 1
    m[0, 4, 4] = 1  # a single pixel becomes 1/4 of a half-resolution pixel
    r = resize_targets(m, (4, 4))
    assert r.shape == (1, 4, 4)
    assert torch.all(r[0, :2, :2] == 1) and r[0, 2, 2].item() == pytest.approx(0.25)
    assert resize_targets(torch.zeros(0, 8, 8), (4, 4)).shape == (0, 4, 4)
