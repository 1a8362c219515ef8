"""The CalibNet paper's data-set statistics (Section III-B, Figs. 4-7), defined exactly; numpy + OpenCV, no torch.

Coordinates. Pixel ``(row i, column j)`` of an ``H x W`` image covers ``[j, j+1) x [i, i+1)``; its centre is
``(j + 0.5, i + 0.5)``. Normalized coordinates divide by ``W`` (x) and ``H`` (y), so the image is ``[0, 1]^2``
with ``(0, 0)`` the top-left corner and ``(0.5, 0.5)`` the image centre.

Per image (:func:`image_statistics`), from the instance masks, the depth map and the salient-object map:

- **Instances per image** (Fig. 4): the number of instances whose decoded mask has at least one pixel
  (annotations that decode to nothing are reported, not counted).
- **Instance centre** (Fig. 6): by default the mask **centroid** (mean normalized coordinate of the mask's
  pixel centres); ``center="box"`` gives the centre of the tight bounding box instead. The centroid is the
  default because it is what the label says about where the object's pixels are; a box centre moves with
  thin protrusions (an arm, a tail) and can fall outside a concave object.
- **Instance size** (Fig. 5a): instance pixels / image pixels (``H * W``), a fraction in ``(0, 1]``.
- **Objects/instances consistency** (Fig. 5b): ``U`` = union of the instance masks (binarized instance
  labels), ``S`` = the salient-object map binarized at ``value >= 128`` (the maps are 0/255 PNGs, sometimes
  anti-aliased at the border; 128 is the midpoint), ``IoU(U, S)``. Also the **outside fraction**
  ``|U \\ S| / |U|``: how much of the instance labels lies outside the salient region (the Fig. 7 case), and
  per instance the share of its pixels outside ``S``.
- **Depth/saliency consistency** (Fig. 5c): ``T`` = Otsu's threshold of the 8-bit depth map (OpenCV's
  ``THRESH_OTSU``: the largest between-class variance, classes ``<= T`` and ``> T``; a tie takes the lowest
  ``T``). calibnet's depth convention is near = dark, far = bright (``runtime/depth.py``), so after reversing
  OpenCV's foreground the **near foreground** is ``F = depth <= T`` (``near-bright`` maps: ``F = depth > T``).
  A constant map has no split: ``F`` is empty. ``IoU(F, S)``.

IoU rule: ``|A & B| / |A | B|``, and **1.0 when both are empty** (the two labels agree that nothing is
there). Matching curve (Fig. 5b/c): for each threshold ``t`` in ``MATCH_THRESHOLDS`` (0, 0.01, ..., 1), the
fraction of images with ``IoU >= t``.

Per data set (:func:`summarize`): histograms with their bin edges (numpy's rule: bins ``[e_k, e_k+1)``, the
last one closed; the centre histogram bins a coordinate ``v`` as ``floor(n v + 1e-9)``, so a centre at
exactly ``k/n`` is in bin ``k`` despite float rounding), curves with their thresholds, means and medians.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

__all__ = ["CENTER_BINS", "CENTER_KINDS", "DENSITY_SIZE", "MATCH_THRESHOLDS", "SALIENCY_THRESHOLD", "SIZE_CLASSES",
           "SIZE_EDGES", "ImageStats", "InstanceStats", "image_statistics", "instance_statistics", "mask_iou",
           "matching_curve", "near_foreground", "otsu_threshold", "summarize"]

#: IoU thresholds of the matching curves: 0, 0.01, ..., 1 (exact k/100 in float64).
MATCH_THRESHOLDS = np.arange(101) / 100.0
#: Salient-object maps are binarized at value >= this (0..255 maps).
SALIENCY_THRESHOLD = 128
#: Bins per axis of the centre-bias histogram over [0, 1]^2.
CENTER_BINS = 20
CENTER_KINDS = ("centroid", "box")
#: Instance-size bin edges (fraction of the image): 0, then log-spaced 1e-5 .. 1, four bins per decade.
#: Log bins because sizes span five decades (a 10-pixel object in a 4K frame to a full-frame one) and most
#: instances are under 10% of the image: linear bins would put nearly all of them in the first one or two.
SIZE_EDGES = np.concatenate([[0.0], 10.0 ** np.linspace(-5.0, 0.0, 21)])
#: Coarse size classes (fraction of the image, inclusive as COCOeval's area ranges) used for AP by size.
#: Relative, not COCO's absolute 32^2 / 96^2 pixels, because RGB-D SIS images differ in resolution.
SIZE_CLASSES: dict[str, tuple[float, float]] = {"small": (0.0, 0.01), "medium": (0.01, 0.1), "large": (0.1, 1.0)}
#: Side of the mean instance-mask map (each mask resized to DENSITY_SIZE^2 with area averaging).
DENSITY_SIZE = 32


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """``|a & b| / |a | b|`` of two bool masks of one shape; 1.0 when both are empty."""
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a & b)) / union


def matching_curve(ious: Sequence[float] | np.ndarray, thresholds: np.ndarray = MATCH_THRESHOLDS) -> np.ndarray:
    """Fraction of the values ``ious`` that are ``>= t`` for each ``t`` of ``thresholds`` (empty input: zeros)."""
    v = np.asarray(ious, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return np.zeros(len(thresholds))
    return (v[None, :] >= np.asarray(thresholds, dtype=np.float64)[:, None]).mean(axis=1)


def otsu_threshold(depth_u8: np.ndarray) -> int | None:
    """OpenCV's Otsu threshold ``T`` of an 8-bit map (classes ``<= T`` / ``> T``); None for a constant map."""
    d = np.ascontiguousarray(depth_u8, dtype=np.uint8)
    if d.size == 0 or int(d.min()) == int(d.max()):
        return None
    t, _ = cv2.threshold(d, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(t)


def near_foreground(depth_u8: np.ndarray, direction: str = "near-dark") -> tuple[np.ndarray, int | None]:
    """(bool near-foreground mask, Otsu threshold) of an 8-bit depth map: ``depth <= T`` for ``near-dark``
    maps (calibnet's convention), ``depth > T`` for ``near-bright``; empty for a constant map."""
    if direction not in ("near-dark", "near-bright"):
        raise ValueError(f"depth direction must be near-dark or near-bright, got {direction!r}")
    t = otsu_threshold(depth_u8)
    if t is None:
        return np.zeros(depth_u8.shape, dtype=bool), None
    return (depth_u8 <= t) if direction == "near-dark" else (depth_u8 > t), t


@dataclass
class InstanceStats:
    """One instance: normalized centre (x, y), size (fraction of the image), share of pixels outside ``S``."""

    center: tuple[float, float]
    size: float
    outside: float | None = None


def instance_statistics(mask: np.ndarray, center: str = "centroid") -> InstanceStats | None:
    """Centre and size of one bool [H,W] instance mask; None when the mask is empty."""
    if center not in CENTER_KINDS:
        raise ValueError(f"center must be one of {CENTER_KINDS}, got {center!r}")
    h, w = mask.shape
    m8 = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).astype(np.uint8)
    mom = cv2.moments(m8, binaryImage=True)
    area = mom["m00"]
    if area == 0:
        return None
    if center == "centroid":  # moments use pixel indices; +0.5 moves to pixel centres
        cx, cy = mom["m10"] / area + 0.5, mom["m01"] / area + 0.5
    else:
        x, y, bw, bh = cv2.boundingRect(m8)
        cx, cy = x + bw / 2.0, y + bh / 2.0
    return InstanceStats((cx / w, cy / h), float(area) / float(h * w))


@dataclass
class ImageStats:
    """The statistics of one image (see the module docs for each definition). ``None``: not measured (no
    salient-object map, no readable depth map), with the reason in the data set's problems."""

    image_id: int
    file_name: str
    height: int
    width: int
    instances: list[InstanceStats] = field(default_factory=list)
    union_fraction: float = 0.0  # |U| / (H W)
    salient_fraction: float | None = None  # |S| / (H W)
    object_iou: float | None = None  # IoU(U, S)
    outside_fraction: float | None = None  # |U \ S| / |U| (0 when U is empty)
    depth_threshold: int | None = None  # Otsu T
    near_fraction: float | None = None  # |F| / (H W)
    depth_iou: float | None = None  # IoU(F, S or U)
    density: np.ndarray | None = field(default=None, repr=False)  # sum of resized instance masks

    @property
    def num_instances(self) -> int:
        """Instances with at least one pixel."""
        return len(self.instances)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (no mask density)."""
        d = asdict(self)
        d.pop("density")
        d["num_instances"] = self.num_instances
        d["instances"] = [{"center": list(i.center), "size": i.size, "outside": i.outside} for i in self.instances]
        return d


def image_statistics(image_id: int, file_name: str, masks: Sequence[np.ndarray], salient: np.ndarray | None = None,
                     depth_u8: np.ndarray | None = None, *, salient_is_union: bool = False, center: str = "centroid",
                     depth_direction: str = "near-dark", height: int | None = None,
                     width: int | None = None) -> ImageStats:
    """Every per-image statistic of one image.

    Args:
        masks: bool [H,W] instance masks (empty ones are skipped).
        salient: bool [H,W] binarized salient-object map ``S``, or None (no map: the object/instance and
            depth statistics are not measured, unless ``salient_is_union``).
        depth_u8: uint8 [H,W] depth map in the data set's convention, or None.
        salient_is_union: no salient-object map exists for the data set: ``U`` stands in for ``S`` in the
            depth statistic, and the object/instance consistency (trivially 1) is not measured.
        height, width: the image size when there are no masks to read it from.
    """
    shapes = {m.shape for m in masks} | ({salient.shape} if salient is not None else set())
    if height is not None and width is not None:
        shapes.add((int(height), int(width)))
    if len(shapes) != 1:
        raise ValueError(f"image {file_name}: masks / maps of different sizes {sorted(shapes)}")
    h, w = shapes.pop()
    stats = ImageStats(int(image_id), str(file_name), h, w)
    union = np.zeros((h, w), dtype=bool)
    density = np.zeros((DENSITY_SIZE, DENSITY_SIZE), dtype=np.float64)
    kept = []
    for m in masks:
        inst = instance_statistics(m, center)
        if inst is None:
            continue
        kept.append(m)
        stats.instances.append(inst)
        union |= m
        density += cv2.resize(m.astype(np.float32), (DENSITY_SIZE, DENSITY_SIZE), interpolation=cv2.INTER_AREA)
    stats.density = density
    n_pix = float(h * w)
    n_union = int(np.count_nonzero(union))
    stats.union_fraction = n_union / n_pix
    reference = union if salient_is_union else salient
    if salient is not None and not salient_is_union:
        stats.salient_fraction = int(np.count_nonzero(salient)) / n_pix
        stats.object_iou = mask_iou(union, salient)
        stats.outside_fraction = int(np.count_nonzero(union & ~salient)) / n_union if n_union else 0.0
        for inst, m in zip(stats.instances, kept):
            inst.outside = int(np.count_nonzero(m & ~salient)) / int(np.count_nonzero(m))
    elif salient_is_union:
        stats.salient_fraction = stats.union_fraction
    if depth_u8 is not None and reference is not None:
        if depth_u8.shape != (h, w):
            raise ValueError(f"image {file_name}: depth map {depth_u8.shape} differs from the image {(h, w)}")
        near, stats.depth_threshold = near_foreground(depth_u8, depth_direction)
        stats.near_fraction = int(np.count_nonzero(near)) / n_pix
        stats.depth_iou = mask_iou(near, reference)
    return stats


def _bin_index(v: np.ndarray, n: int) -> np.ndarray:
    """Bin ``floor(n v)`` of values in [0, 1] (1 goes to the last bin); a value within 1e-9 below an edge k/n
    counts as on it, so that a centre computed as exactly k/n is not lost to float rounding."""
    return np.clip(np.floor(np.asarray(v, dtype=np.float64) * n + 1e-9), 0, n - 1).astype(np.int64)


def _histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    counts, _ = np.histogram(values, bins=edges)
    total = max(int(counts.sum()), 1)
    return {"bin_edges": edges.tolist(), "count": counts.tolist(), "fraction": (counts / total).tolist()}


def _consistency(ious: list[float], what: str) -> dict[str, Any]:
    v = np.asarray(ious, dtype=np.float64)
    curve = matching_curve(v)
    return {
        "definition": what,
        "images": int(v.size),
        "mean_iou": float(v.mean()) if v.size else None,
        "median_iou": float(np.median(v)) if v.size else None,
        "fraction_iou_ge_0.5": float((v >= 0.5).mean()) if v.size else None,
        "histogram": _histogram(v, np.linspace(0.0, 1.0, 21)),
        "matching_curve": {"thresholds": MATCH_THRESHOLDS.tolist(), "fraction": curve.tolist()},
    }


def summarize(rows: Sequence[ImageStats], *, center: str = "centroid", salient_source: str = "maps",
              center_bins: int = CENTER_BINS) -> dict[str, Any]:
    """The data-set statistics of per-image rows (see the module docs); JSON-ready.

    ``salient_source``: ``"maps"`` (salient-object maps given) or ``"union"`` (the union of instances stands in;
    the object/instance consistency is then skipped with a note).
    """
    counts = np.array([r.num_instances for r in rows], dtype=np.int64)
    max_count = int(counts.max()) if counts.size else 0
    count_edges = np.arange(max_count + 2, dtype=np.float64)
    centers = np.array([i.center for r in rows for i in r.instances], dtype=np.float64).reshape(-1, 2)
    sizes = np.array([i.size for r in rows for i in r.instances], dtype=np.float64)
    edges = np.linspace(0.0, 1.0, center_bins + 1)
    hist2d = np.zeros((center_bins, center_bins))
    np.add.at(hist2d, (_bin_index(centers[:, 1], center_bins), _bin_index(centers[:, 0], center_bins)), 1.0)
    n_inst = int(len(sizes))
    density = sum((r.density for r in rows if r.density is not None), np.zeros((DENSITY_SIZE, DENSITY_SIZE)))
    dist = np.hypot(centers[:, 0] - 0.5, centers[:, 1] - 0.5)
    central = ((np.abs(centers - 0.5) <= 0.25).all(axis=1)) if n_inst else np.zeros(0, bool)
    size_classes = {k: int(((sizes >= lo) & (sizes <= hi)).sum()) for k, (lo, hi) in SIZE_CLASSES.items()}
    out: dict[str, Any] = {
        "images": len(rows),
        "instances": n_inst,
        "instances_per_image": {
            "definition": "instances with >= 1 pixel per image; bin k = [k, k+1) holds images with k instances",
            "bin_edges": count_edges.tolist(),
            "count": np.bincount(counts, minlength=max_count + 1).tolist() if counts.size else [0],
            "fraction": (np.bincount(counts, minlength=max_count + 1) / counts.size).tolist() if counts.size else [0.0],
            "mean": float(counts.mean()) if counts.size else None,
            "median": float(np.median(counts)) if counts.size else None,
            "max": max_count,
            "images_without_instances": int((counts == 0).sum()),
        },
        "center_bias": {
            "definition": ("mask centroid" if center == "centroid" else "bounding-box centre")
            + " in normalized image coordinates ((0,0) top-left, (1,1) bottom-right); histogram rows = y bins "
              "(top first), columns = x bins; fraction of all instances",
            "center": center,
            "x_edges": edges.tolist(),
            "y_edges": edges.tolist(),
            "histogram": (hist2d / max(n_inst, 1)).tolist(),
            "mean_center": centers.mean(axis=0).tolist() if n_inst else None,
            "mean_distance_to_image_center": float(dist.mean()) if n_inst else None,
            "fraction_in_central_quarter": float(central.mean()) if n_inst else None,
            "mask_density": {
                "definition": f"mean over instances of the instance mask resized to {DENSITY_SIZE}x{DENSITY_SIZE} "
                              "(area averaging): the probability that a normalized location is inside an instance",
                "map": (density / max(n_inst, 1)).tolist(),
            },
        },
        "instance_size": {
            "definition": "instance pixels / image pixels; bins: 0, then log-spaced 1e-5..1 (4 per decade)",
            **_histogram(sizes, SIZE_EDGES),
            "mean": float(sizes.mean()) if n_inst else None,
            "median": float(np.median(sizes)) if n_inst else None,
            "classes": {"edges": {k: list(v) for k, v in SIZE_CLASSES.items()}, "count": size_classes},
        },
    }
    obj_rows = [r for r in rows if r.object_iou is not None]
    if salient_source == "maps":
        oi = _consistency([r.object_iou for r in obj_rows if r.object_iou is not None],
                          "IoU(union of instance masks, salient-object map >= 128); 1 when both are empty")
        per_inst = np.array([i.outside for r in obj_rows for i in r.instances if i.outside is not None])
        oi.update(
            mean_outside_fraction=float(np.mean([r.outside_fraction for r in obj_rows])) if obj_rows else None,
            instances_mostly_outside=int((per_inst > 0.5).sum()),
            instances_entirely_outside=int((per_inst >= 1.0).sum()),
            skipped=False,
        )
        out["objects_instances"] = oi
    else:
        out["objects_instances"] = {"skipped": True, "note": "no salient-object maps (--saliency-dir): the union of "
                                    "instances stands in for them, so their consistency is not measured"}
    d_rows = [r for r in rows if r.depth_iou is not None]
    ds = _consistency([r.depth_iou for r in d_rows if r.depth_iou is not None],
                      "IoU(near foreground of the Otsu-binarized depth map, "
                      + ("salient-object map" if salient_source == "maps" else "union of instance masks") + ")")
    thresholds = [r.depth_threshold for r in d_rows if r.depth_threshold is not None]
    ds.update(salient_reference="salient-object maps" if salient_source == "maps" else "union of instances",
              mean_otsu_threshold=float(np.mean(thresholds)) if thresholds else None,
              constant_depth_maps=sum(r.depth_threshold is None for r in d_rows))
    out["depth_saliency"] = ds
    return out
