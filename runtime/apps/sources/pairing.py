"""Pairing colour with depth by capture time: the one rule of every source whose two streams are stamped apart.

A colour frame gets the depth map whose stamp is nearest to its own, if that is at most ``max_skew`` away
(a tie goes to the earlier depth map); otherwise it gets none and the source reports it as unpaired, never
pairs it with a far-away depth map. The default window is half the depth stream's median period: a colour
frame halfway between two depth frames is still paired, one next to a missing depth frame is not. This is the
nearest-stamp rule of ROS's ApproximateTime policy seen from the colour stream: every colour frame is
considered, and a depth map may serve two colour frames (colour at 30 Hz, depth at 15 Hz). No torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["default_max_skew_ns", "median_period_ns", "nearest_stamps"]


def median_period_ns(stamps: Sequence[int] | np.ndarray) -> int | None:
    """The median gap between consecutive distinct stamps (ns), or None with fewer than two of them."""
    s = np.unique(np.asarray(stamps, np.int64))
    return int(np.median(np.diff(s))) if len(s) >= 2 else None


def default_max_skew_ns(depth_stamps: Sequence[int] | np.ndarray,
                        color_stamps: Sequence[int] | np.ndarray = ()) -> int:
    """Half the depth stream's median period; with fewer than two depth stamps half the colour stream's; else 0
    (exact stamps only)."""
    period = median_period_ns(depth_stamps) or median_period_ns(color_stamps) or 0
    return period // 2


def nearest_stamps(color_ns: Sequence[int] | np.ndarray, depth_ns: Sequence[int] | np.ndarray,
                   max_skew_ns: int) -> np.ndarray:
    """int64 [N]: for each colour stamp, the index (into ``depth_ns``, in any order) of the nearest depth stamp
    at most ``max_skew_ns`` away (the earlier one on a tie), or -1 when there is none."""
    color = np.asarray(color_ns, np.int64).reshape(-1)
    depth = np.asarray(depth_ns, np.int64).reshape(-1)
    out = np.full(len(color), -1, np.int64)
    if not len(depth) or not len(color):
        return out
    order = np.argsort(depth, kind="stable")
    d = depth[order]
    right = np.searchsorted(d, color, side="left").clip(0, len(d) - 1)  # first depth >= colour (or the last)
    left = (right - 1).clip(0, len(d) - 1)
    dist_l, dist_r = np.abs(color - d[left]), np.abs(d[right] - color)
    best = np.where(dist_l <= dist_r, left, right)  # equal distance: the earlier depth map
    ok = np.minimum(dist_l, dist_r) <= max_skew_ns
    out[ok] = order[best[ok]]
    return out
