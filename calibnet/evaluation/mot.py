"""Multi-object-tracking metrics on instance masks: IDF1 (Ristani et al. 2016) and CLEAR-MOT ID switches / MOTA
(Bernardin and Stiefelhagen 2008), numpy only.

A frame is ``(ids, masks)``: int ids [N] and bool masks [N,H,W], for the ground truth and for the tracker (its
track IDs; an instance without one, ID < 0, is left out). A tracker instance and a ground-truth object are
a possible match in a frame when their mask IoU is at least ``iou_threshold`` (0.5, as in MOTChallenge).

- IDF1: every ground-truth trajectory is paired with at most one tracker trajectory (and the reverse) so that
  the number of frames in which the pairs match (IDTP) is the largest possible (an exact assignment);
  IDF1 = 2 IDTP / (ground-truth instances + tracker instances), IDP = IDTP / tracker instances,
  IDR = IDTP / ground-truth instances.
- ID switches: frame by frame, a ground-truth object keeps its previous tracker ID while they still match;
  the other objects are assigned by IoU (an exact assignment); an object whose new tracker ID differs from
  the one it last had is an ID switch. MOTA = 1 - (misses + false positives + switches) / ground-truth
  instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..runtime.apps.tracking import linear_sum_assignment, mask_iou

__all__ = ["MotFrame", "combine", "mot_metrics"]

MotFrame = tuple[np.ndarray, np.ndarray]  # (ids [N], masks bool [N,H,W])


def _tracked(frame: MotFrame) -> MotFrame:
    ids, masks = np.asarray(frame[0]).reshape(-1), np.asarray(frame[1], bool)
    keep = ids >= 0
    return ids[keep], masks[keep]


def mot_metrics(gt: Sequence[MotFrame], pred: Sequence[MotFrame], iou_threshold: float = 0.5) -> dict[str, Any]:
    """IDF1, IDP, IDR, ID switches, MOTA and their counts for one sequence (see the module doc); the counts
    of several sequences add up (:func:`combine`)."""
    if len(gt) != len(pred):
        raise ValueError(f"{len(gt)} ground-truth frames but {len(pred)} tracker frames")
    pairs: dict[tuple[int, int], int] = {}  # (gt id, tracker id) -> frames in which they match
    last: dict[int, int] = {}  # gt id -> the tracker id it last matched
    n_gt = n_pred = matches = switches = 0
    for g, p in zip(gt, pred):
        gids, gmasks = _tracked(g)
        pids, pmasks = _tracked(p)
        n_gt, n_pred = n_gt + len(gids), n_pred + len(pids)
        if not len(gids) or not len(pids):
            continue
        iou = mask_iou(gmasks, pmasks)
        ok = iou >= iou_threshold
        for a, b in zip(*np.nonzero(ok)):
            key = (int(gids[a]), int(pids[b]))
            pairs[key] = pairs.get(key, 0) + 1
        kept: dict[int, int] = {}  # gt row -> tracker column
        for a, gid in enumerate(gids.tolist()):  # CLEAR MOT: keep last frame's correspondences that still hold
            same = np.nonzero((pids == last.get(gid, -1)) & ok[a])[0]
            if len(same) and int(same[0]) not in kept.values():
                kept[a] = int(same[0])
        rows = [a for a in range(len(gids)) if a not in kept]
        cols = [b for b in range(len(pids)) if b not in kept.values()]
        if rows and cols:
            grid = np.ix_(np.array(rows, np.intp), np.array(cols, np.intp))
            sub = np.where(ok[grid], 1.0 - iou[grid], 2.0 + len(rows) + len(cols))
            for r, c in zip(*linear_sum_assignment(sub)):
                if ok[rows[r], cols[c]]:
                    kept[rows[r]] = cols[c]
                    gid, pid = int(gids[rows[r]]), int(pids[cols[c]])
                    switches += gid in last and last[gid] != pid
        for a, b in kept.items():
            last[int(gids[a])] = int(pids[b])
        matches += len(kept)
    return _finish({"gt": n_gt, "pred": n_pred, "matches": matches, "switches": switches,
                    "idtp": _idtp(pairs)})


def _idtp(pairs: dict[tuple[int, int], int]) -> int:
    """The largest total of matched frames over one-to-one pairings of ground-truth and tracker trajectories."""
    if not pairs:
        return 0
    g_index = {g: i for i, g in enumerate(sorted({g for g, _ in pairs}))}
    p_index = {p: i for i, p in enumerate(sorted({p for _, p in pairs}))}
    count = np.zeros((len(g_index), len(p_index)))
    for (g, p), n in pairs.items():
        count[g_index[g], p_index[p]] = n
    rows, cols = linear_sum_assignment(-count)
    return int(count[rows, cols].sum())


def _finish(c: dict[str, int]) -> dict[str, Any]:
    """The metrics of counts ``gt``, ``pred``, ``matches``, ``switches``, ``idtp``."""
    gt, pred, idtp = c["gt"], c["pred"], c["idtp"]
    misses, false_pos = gt - c["matches"], pred - c["matches"]
    return {**c, "IDF1": 2.0 * idtp / (gt + pred) if gt + pred else float("nan"),
            "IDP": idtp / pred if pred else float("nan"), "IDR": idtp / gt if gt else float("nan"),
            "ID_switches": c["switches"], "misses": misses, "false_positives": false_pos,
            "MOTA": 1.0 - (misses + false_pos + c["switches"]) / gt if gt else float("nan")}


def combine(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of several sequences together (their counts summed; IDF1 of the total, not a mean)."""
    return _finish({k: sum(int(r[k]) for r in results) for k in ("gt", "pred", "matches", "switches", "idtp")})
