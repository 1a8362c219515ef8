"""Depth-aware tracking: instance depth gates matches, keeps hidden objects alive and re-acquires them."""

from __future__ import annotations

import numpy as np
import pytest

from calibnet.data.sequences import make_crossing_sequence
from calibnet.runtime.apps.tracking import InstanceTracker
from calibnet.runtime.core.postprocess import instance_depths, masks_to_boxes
from calibnet.runtime.core.prediction import Prediction


def _pred(masks: np.ndarray, depth: np.ndarray | None) -> Prediction:
    boxes = masks_to_boxes(masks)
    return Prediction(masks, np.full(len(masks), 0.9, np.float32), boxes, np.ones(3, np.float32),
                      np.arange(len(masks)), instance_depth=depth)


def _ids_per_object(frames, with_depth: bool) -> dict[int, set[int]]:
    tracker, seen = InstanceTracker(), {}
    for f in frames:
        depth = instance_depths(f.masks, masks_to_boxes(f.masks), f.depth) if with_depth else None
        for g, t in zip(f.ids.tolist(), tracker.update(_pred(f.masks, depth)).tolist()):
            seen.setdefault(g, set()).add(t)
    return seen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_objects_crossing_at_different_depths_keep_their_ids(seed):
    """A near object and a far one cross; the far one is hidden behind the near one for a few frames (the
    detections are the exact visible masks, the depth maps noisy, with holes)."""
    frames = make_crossing_sequence(seed, 40, 120, 160, n_pairs=1, speed=2.0)
    hidden = sum(1 not in f.ids for f in frames)
    assert 3 <= hidden <= 8 and all(0 in f.ids for f in frames)
    ids = _ids_per_object(frames, with_depth=True)
    assert len(ids[0]) == 1 and len(ids[1]) == 1 and ids[0] != ids[1]
    # masks alone: the far object comes out where its track did not expect it and gets a new ID
    assert len(_ids_per_object(frames, with_depth=False)[1]) > 1


def test_a_match_must_agree_in_depth():
    box = np.zeros((1, 64, 64), bool)
    box[0, 20:40, 20:40] = True
    tr = InstanceTracker()
    first = tr.update(_pred(box, np.array([40.0], np.float32)))[0]
    assert tr.update(_pred(box, np.array([50.0], np.float32)))[0] == first  # within the tolerance (20 levels)
    other = tr.update(_pred(box, np.array([90.0], np.float32)))[0]  # same place, another depth: another object
    assert other != first
    unknown = tr.update(_pred(box, np.array([np.nan], np.float32)))[0]  # NaN depth: the masks decide
    assert unknown in (first, other)
    masks_only = InstanceTracker(depth_tolerance=None)
    a = masks_only.update(_pred(box, np.array([40.0], np.float32)))[0]
    assert masks_only.update(_pred(box, np.array([90.0], np.float32)))[0] == a
    with pytest.raises(ValueError, match="depth_tolerance"):
        InstanceTracker(depth_tolerance=-1)


def test_a_hidden_track_outlives_max_missed_only_behind_an_instance_at_another_depth():
    far = np.zeros((1, 64, 64), bool)
    far[0, 25:35, 25:35] = True
    near = np.zeros((1, 64, 64), bool)
    near[0, 15:45, 15:45] = True
    empty = np.zeros((0, 64, 64), bool)
    for cover, expect_same in ((near, True), (empty, False)):
        tr = InstanceTracker(max_missed=2)
        first = tr.update(_pred(far, np.array([90.0], np.float32)))[0]
        for _ in range(6):  # longer than max_missed
            tr.update(_pred(cover, np.array([40.0], np.float32)[:len(cover)]))
        again = tr.update(_pred(far, np.array([90.0], np.float32)))[0]
        assert (again == first) == expect_same  # hidden behind the near instance: kept; gone: retired
