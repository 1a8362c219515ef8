"""IDF1 and ID switches on hand-made tracks whose values are known."""

from __future__ import annotations

import numpy as np
import pytest

from calibnet.evaluation.mot import combine, mot_metrics


def _box(x: int) -> np.ndarray:
    m = np.zeros((20, 60), bool)
    m[5:15, x:x + 10] = True
    return m


def _frames(ids_per_frame):
    """Two objects at x = 5 and x = 40 in every frame; ``ids_per_frame``: the tracker IDs given to them."""
    masks = np.stack([_box(5), _box(40)])
    return [(np.array(ids), masks) for ids in ids_per_frame]


GT = _frames([[1, 2]] * 10)


def test_perfect_tracking():
    m = mot_metrics(GT, _frames([[7, 9]] * 10))
    assert m["IDF1"] == 1.0 and m["ID_switches"] == 0 and m["MOTA"] == 1.0 and m["idtp"] == 20


def test_a_swap_in_the_middle():
    m = mot_metrics(GT, _frames([[7, 9]] * 5 + [[9, 7]] * 5))
    assert m["ID_switches"] == 2  # both objects change ID once
    assert m["idtp"] == 10 and m["IDF1"] == pytest.approx(0.5)  # each ID is right for half the frames
    assert m["MOTA"] == pytest.approx(1 - 2 / 20)


def test_a_new_id_after_a_gap_and_missed_and_untracked_instances():
    pred = _frames([[7, 9]] * 4 + [[7, 11]] * 6)
    pred[2] = (np.array([7]), pred[2][1][:1])  # object 2 missed in frame 2: no switch by itself
    pred[3] = (np.array([7, -1]), pred[3][1])  # an instance without ID is left out
    m = mot_metrics(GT, pred)
    assert m["ID_switches"] == 1 and m["misses"] == 2 and m["false_positives"] == 0
    assert m["idtp"] == 10 + 6 and m["IDF1"] == pytest.approx(2 * 16 / (20 + 18))
    both = combine([m, mot_metrics(GT, _frames([[7, 9]] * 10))])
    assert both["ID_switches"] == 1 and both["IDF1"] == pytest.approx(2 * 36 / (40 + 38))


def test_low_overlap_is_no_match():
    shifted = [(np.array([7, 9]), np.stack([_box(12), _box(40)]))] * 10  # IoU 3/17 for object 1
    m = mot_metrics(GT, shifted)
    assert m["misses"] == 10 and m["false_positives"] == 10 and m["idtp"] == 10
    with pytest.raises(ValueError, match="10 ground-truth frames but 9"):
        mot_metrics(GT, shifted[:9])
