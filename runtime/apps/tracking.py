"""Stable instance IDs across frames: mask-IoU matching with an exact assignment (no scipy, no torch).

:class:`InstanceTracker` keeps one :class:`Track` per object. Each frame, the masks of the instances that
score at least ``min_score`` are matched to the tracks by mask IoU with the Hungarian algorithm
(:func:`linear_sum_assignment`, an exact O(n^3) shortest-augmenting-path solver in numpy that gives the same
optimum as ``scipy.optimize.linear_sum_assignment``); a pair below ``iou_threshold`` never matches. A track
not seen in a frame is kept for ``max_missed`` frames, its mask moved by the track's velocity (centroid
motion, smoothed) so a briefly missed moving object is picked up again; an unmatched instance opens a new
track with a new ID (IDs are never reused). Instances below ``min_score`` get ID -1; when no instance reaches
``min_score`` for ``idle_frames`` frames in a row, the tracker says so once in the log (every ID is -1: the model's
scores are lower than the tracker's threshold).

IoU is computed on masks subsampled to at most ``match_side`` pixels per side (exact for smaller frames):
matching needs overlap, not pixel accuracy, and an 8000x8000 frame stays cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..core.prediction import Prediction
from .overlay import DRAW_MIN_SCORE

__all__ = ["InstanceTracker", "Track", "linear_sum_assignment", "mask_iou"]

LOG = logging.getLogger(__name__)


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular cost matrix: ``(rows, cols)`` with ``min(n, m)`` pairs, rows
    ascending, as ``scipy.optimize.linear_sum_assignment`` returns them. Costs must be finite."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("cost must be finite")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy()
    # potentials u (rows), v (columns); col_row[j] = 1-based row assigned to column j (0: none); column 0 is
    # the virtual start of each augmenting path (e-maxx formulation of the Hungarian algorithm)
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    col_row = np.zeros(m + 1, np.int64)
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        col_row[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = col_row[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            on = np.nonzero(used)[0]
            u[col_row[on]] += delta
            v[on] -= delta
            minv[~used] -= delta
            j0 = j1
            if col_row[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            col_row[j0] = col_row[j1]
            j0 = j1
    cols = np.nonzero(col_row[1:])[0]
    rows = col_row[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def _similarities(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and containment (intersection over the smaller area) [K,T] of bool masks ``a`` [K,H,W], ``b`` [T,H,W]."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter, area_a, area_b = fa @ fb.T, fa.sum(1), fb.sum(1)
    union = area_a[:, None] + area_b[None, :] - inter
    contain = inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1.0)
    return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0).astype(np.float32), contain


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [K,T] of bool masks ``a`` [K,H,W] and ``b`` [T,H,W] (0 where both masks are empty)."""
    return _similarities(a, b)[0]


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros(2)
    return np.array([ys.mean(), xs.mean()])


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` translated by (dy, dx) pixels, zeros where it leaves the frame."""
    if dy == 0 and dx == 0:
        return mask
    H, W = mask.shape
    out = np.zeros_like(mask)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    out[max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = mask[max(-dy, 0):H - max(dy, 0),
                                                                     max(-dx, 0):W - max(dx, 0)]
    return out


@dataclass
class Track:
    """One tracked object (masks at the tracker's matching resolution)."""

    track_id: int
    mask: np.ndarray  # bool [h,w], where the object was last seen
    centroid: np.ndarray  # (y, x) of that mask
    velocity: np.ndarray  # (dy, dx) per frame, smoothed
    missed: int = 0  # frames since it was last matched
    hits: int = 1

    def predicted_mask(self) -> np.ndarray:
        """The last mask moved by the velocity over the frames it was missed (+1: the current frame)."""
        steps = self.missed + 1
        dy, dx = np.rint(self.velocity * steps).astype(int)
        return _shift(self.mask, int(dy), int(dx))


class InstanceTracker:
    """Assigns stable track IDs to the instances of consecutive :class:`Prediction` s (see the module doc)."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5, min_score: float = DRAW_MIN_SCORE,
                 match_side: int = 320, motion: bool = True, contain_threshold: float = 0.6,
                 idle_frames: int = 30) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.iou_threshold, self.max_missed, self.min_score = float(iou_threshold), int(max_missed), float(min_score)
        self.match_side, self.motion, self.contain_threshold = int(match_side), bool(motion), float(contain_threshold)
        self.tracks: list[Track] = []
        self.next_id = 1
        self._hw: tuple[int, int] | None = None
        self.idle_frames, self._idle, self._best, self._warned = int(idle_frames), 0, 0.0, False

    def reset(self) -> None:
        """Forget all tracks (IDs keep counting up)."""
        self.tracks = []
        self._hw = None

    def _note_idle(self, pred: Prediction, kept: int) -> None:
        """Count the frames in a row without an instance at ``min_score``; say so once after ``idle_frames``."""
        if kept:
            self._idle, self._best = 0, 0.0
            return
        self._idle += 1
        self._best = max(self._best, float(pred.scores.max()) if len(pred) else 0.0)
        if self._idle >= self.idle_frames > 0 and not self._warned:
            self._warned = True
            LOG.warning("tracker: no instance reached the minimum score %g in %d frames in a row (best %.2f): every "
                        "track_id is -1 (a lower min_score: calibnet-infer --min-score)", self.min_score,
                        self._idle, self._best)

    def _small(self, masks: np.ndarray) -> np.ndarray:
        stride = max(1, -(-max(masks.shape[1:]) // self.match_side))
        return masks[:, ::stride, ::stride]

    def update(self, pred: Prediction) -> np.ndarray:
        """Track IDs int64 [K] of ``pred``'s instances (-1 below ``min_score``); also stored in
        ``pred.track_ids``. Frames must come in order; a frame of another size starts new tracks."""
        if self._hw != pred.image_hw:
            self.reset()
            self._hw = pred.image_hw
        ids = np.full(len(pred), -1, np.int64)
        keep = np.nonzero(pred.scores >= self.min_score)[0]
        self._note_idle(pred, len(keep))
        small = self._small(pred.masks[keep]) if len(keep) else np.zeros((0, 1, 1), bool)
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        if len(keep) and self.tracks:
            prior = np.stack([t.predicted_mask() if self.motion else t.mask for t in self.tracks])
            # containment: the visible part of a partly occluded object lies inside the track's mask (or the
            # other way round when it comes out again); matched only among the pairs IoU left unmatched
            iou, contain = _similarities(small, prior)
            for sim, thr in ((iou, self.iou_threshold), (contain, self.contain_threshold)):
                dets = [d for d in range(len(keep)) if d not in matched_dets]
                trks = [t for t in range(len(self.tracks)) if t not in matched_tracks]
                if not dets or not trks:
                    break
                sub = sim[np.ix_(dets, trks)]
                # invalid pairs cost more than any set of valid ones: most valid matches first, then similarity
                cost = np.where(sub >= thr, 1.0 - sub, float(len(dets) + len(trks) + 1))
                for a, b in zip(*linear_sum_assignment(cost)):
                    if sub[a, b] >= thr:
                        d, t = dets[a], trks[b]
                        self._matched(self.tracks[t], small[d])
                        ids[keep[d]] = self.tracks[t].track_id
                        matched_tracks.add(t)
                        matched_dets.add(d)
        for k, t in enumerate(self.tracks):
            if k not in matched_tracks:
                t.missed += 1
        self.tracks = [t for k, t in enumerate(self.tracks) if k in matched_tracks or t.missed <= self.max_missed]
        for d in range(len(keep)):
            if d not in matched_dets and small[d].any():
                self.tracks.append(Track(self.next_id, small[d].copy(), _centroid(small[d]), np.zeros(2)))
                ids[keep[d]] = self.next_id
                self.next_id += 1
        pred.track_ids = ids
        return ids

    @staticmethod
    def _matched(track: Track, mask: np.ndarray) -> None:
        c = _centroid(mask)
        ratio = float(mask.sum()) / max(float(track.mask.sum()), 1.0)
        if 0.7 <= ratio <= 1.4:  # the centroid of a mask that grows or shrinks (occlusion) says little of motion
            step = (c - track.centroid) / (track.missed + 1)
            track.velocity = step if track.hits == 1 else 0.5 * track.velocity + 0.5 * step
        track.mask, track.centroid, track.missed = mask.copy(), c, 0
        track.hits += 1
