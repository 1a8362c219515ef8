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

Depth: when a Prediction carries ``instance_depth`` (the median of the model's 8-bit depth in each mask, as
:class:`~calibnet.runtime.Runtime` gives it), a track remembers its object's depth and an instance whose depth
differs from it by more than ``depth_tolerance`` 8-bit levels never matches it, however much the masks
overlap. That gate makes a third, looser matching stage safe: an instance left unmatched whose depth agrees
with a track's and whose centroid lies within ``reacquire`` track sizes (the square root of the object's full
mask area) of where the track is predicted re-acquires it, although their masks do not overlap: a far object
that comes out from behind a near one where its track did not expect it (its visible part, shrinking
behind the occluder, made the track's velocity wrong) keeps its ID. And a track whose predicted mask lies
mostly under an instance at another depth is hidden, not gone: it is kept up to ``max_hidden`` frames beyond
``max_missed``. Two objects crossing in the image at different depths, the far one hidden behind the near one
for a few frames, so keep their IDs. A NaN depth
(an empty mask) or ``depth_tolerance=None`` leaves matching to the masks alone (no third stage).
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
    depth: float = float("nan")  # the object's 8-bit depth when it was last seen (NaN: unknown)
    hidden: int = 0  # missed frames in which an instance at another depth covered where it was predicted
    full_area: float = 0.0  # the object's full mask area (see InstanceTracker._matched)

    def predicted_mask(self) -> np.ndarray:
        """The last mask moved by the velocity over the frames it was missed (+1: the current frame)."""
        dy, dx = np.rint(self.velocity * (self.missed + 1)).astype(int)
        return _shift(self.mask, int(dy), int(dx))


class InstanceTracker:
    """Assigns stable track IDs to the instances of consecutive :class:`Prediction` s (see the module doc)."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5, min_score: float = DRAW_MIN_SCORE,
                 match_side: int = 320, motion: bool = True, contain_threshold: float = 0.6,
                 idle_frames: int = 30, depth_tolerance: float | None = 20.0, reacquire: float = 1.5,
                 max_hidden: int = 15) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if depth_tolerance is not None and not depth_tolerance >= 0:
            raise ValueError(f"depth_tolerance must be >= 0 (8-bit levels) or None, got {depth_tolerance}")
        self.depth_tolerance, self.reacquire, self.max_hidden = depth_tolerance, float(reacquire), int(max_hidden)
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

    def update(self, pred: Prediction) -> np.ndarray:
        """Track IDs int64 [K] of ``pred``'s instances (-1 below ``min_score``); also stored in
        ``pred.track_ids``. Frames must come in order; a frame of another size starts new tracks."""
        if self._hw != pred.image_hw:
            self.reset()
            self._hw = pred.image_hw
        ids = np.full(len(pred), -1, np.int64)
        keep = np.nonzero(pred.scores >= self.min_score)[0]
        self._note_idle(pred, len(keep))
        stride = max(1, -(-max(pred.image_hw) // self.match_side))  # masks at the matching resolution
        small = pred.masks[keep][:, ::stride, ::stride] if len(keep) else np.zeros((0, 1, 1), bool)
        depth = (np.full(len(keep), np.nan) if pred.instance_depth is None or self.depth_tolerance is None
                 else np.asarray(pred.instance_depth, np.float64)[keep])
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        prior = np.stack([t.predicted_mask() if self.motion else t.mask for t in self.tracks]) if self.tracks else None
        if len(keep) and prior is not None:
            # containment: the visible part of a partly occluded object lies inside the track's mask (or the
            # other way round when it comes out again); matched only among the pairs IoU left unmatched
            iou, contain = _similarities(small, prior)
            gap = np.abs(depth[:, None] - np.array([t.depth for t in self.tracks])[None, :])
            apart = gap > (self.depth_tolerance if self.depth_tolerance is not None else np.inf)  # NaN: not apart
            iou[apart], contain[apart] = 0.0, 0.0
            stages = [(iou, self.iou_threshold), (contain, self.contain_threshold)]
            if self.reacquire > 0 and np.isfinite(gap).any():
                stages.append((self._nearness(small, depth, ~apart & np.isfinite(gap)), 0.0))
            for sim, thr in stages:
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
                        self._matched(self.tracks[t], small[d], depth[d])
                        ids[keep[d]] = self.tracks[t].track_id
                        matched_tracks.add(t)
                        matched_dets.add(d)
        for k, t in enumerate(self.tracks):
            if k not in matched_tracks:
                t.hidden += self._covered(t, prior[k], small, depth) if len(keep) and prior is not None else 0
                t.missed += 1
        self.tracks = [t for k, t in enumerate(self.tracks)
                       if k in matched_tracks or t.missed <= self.max_missed + min(t.hidden, self.max_hidden)]
        for d in range(len(keep)):
            if d not in matched_dets and small[d].any():
                self.tracks.append(Track(self.next_id, small[d].copy(), _centroid(small[d]), np.zeros(2),
                                         depth=float(depth[d]), full_area=float(small[d].sum())))
                ids[keep[d]] = self.next_id
                self.next_id += 1
        pred.track_ids = ids
        return ids

    def _covered(self, track: Track, where: np.ndarray, small: np.ndarray, depth: np.ndarray) -> bool:
        """Whether at least half of ``where`` (the track's predicted mask) lies under instances at another depth
        (beyond the tolerance): the object is hidden behind one, not gone (depth known only)."""
        if self.depth_tolerance is None or not np.isfinite(track.depth) or not where.any():
            return False
        other = np.abs(depth - track.depth) > self.depth_tolerance
        if not other.any():
            return False
        return bool(np.count_nonzero(where & small[other].any(0)) >= 0.5 * np.count_nonzero(where))

    def _nearness(self, small: np.ndarray, depth: np.ndarray, agree: np.ndarray) -> np.ndarray:
        """[K,T] 1 - (centroid distance / (``reacquire`` x track size)) of each instance and each track's predicted
        position, for the pairs whose depths are known and agree; -1 for the others (never matched)."""
        det_c = np.array([_centroid(m) for m in small]).reshape(-1, 2)
        trk_c = np.array([t.centroid + (t.velocity * (t.missed + 1) if self.motion else 0.0) for t in self.tracks])
        size = np.sqrt(np.maximum([t.full_area for t in self.tracks], 1.0))
        dist = np.linalg.norm(det_c[:, None, :] - trk_c[None, :, :], axis=2) / (self.reacquire * size[None, :])
        return np.where(agree & np.array([m.any() for m in small])[:, None], 1.0 - dist, -1.0)

    @staticmethod
    def _matched(track: Track, mask: np.ndarray, depth: float) -> None:
        c = _centroid(mask)
        area = float(mask.sum())
        ratio = area / max(float(track.mask.sum()), 1.0)
        # the centroid of a mask that grows or shrinks (occlusion, or two objects seen as one) says little of
        # motion: only masks about the size of the last one and of the object's full size update the velocity.
        # The full size follows the mask while it is about that size or grows, and decays slowly while the
        # mask is smaller (a partly hidden object keeps its size; one that recedes for good is followed)
        full = track.full_area
        steady = 0.9 * full <= area <= 1.1 * full
        track.full_area = area if steady or area > full else 0.98 * full
        if 0.7 <= ratio <= 1.4 and steady:
            step = (c - track.centroid) / (track.missed + 1)
            track.velocity = step if track.hits == 1 else 0.5 * track.velocity + 0.5 * step
        track.mask, track.centroid, track.missed, track.hidden = mask.copy(), c, 0, 0
        track.hits += 1
        if np.isfinite(depth):
            track.depth = float(depth)
