"""The reports of ``calibnet-analyze``: one JSON with every statistic and a markdown summary."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DatasetAnalysis
from .plots import PlottingUnavailable, write_figures
from .stats import MATCH_THRESHOLDS, SALIENCY_THRESHOLD, SIZE_CLASSES

__all__ = ["REPORT_JSON", "REPORT_MD", "markdown_summary", "write_reports"]

REPORT_JSON = "analysis.json"
REPORT_MD = "summary.md"
#: Rows of each "worst images" table in the markdown (the JSON has more).
MD_WORST = 10


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serializable: {type(v).__name__}")


def _finite(v: Any) -> Any:
    """NaN -> None everywhere (strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}%"


def _num(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown_summary(datasets: Sequence[dict[str, Any]], figures: Mapping[str, Path | str],
                     notes: Sequence[str] = ()) -> str:
    """The markdown summary of analysed data sets (the dicts of ``analysis.json``)."""
    lines = ["# RGB-D SIS data-set analysis", ""]
    lines += [f"> {n}" for n in notes] + ([""] if notes else [])
    head = ["data set", "images", "instances", "inst./image", "median size", "centre mean (x, y)",
            "in central quarter", "obj/inst mean IoU", "obj/inst IoU >= 0.5", "depth mean IoU", "depth IoU >= 0.5",
            "problems"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in datasets:
        cb, sz, oi, ds = d["center_bias"], d["instance_size"], d["objects_instances"], d["depth_saliency"]
        mc = cb["mean_center"]
        cells = [d["name"], str(d["images"]), str(d["instances"]), _num(d["instances_per_image"]["mean"]),
                 _pct(sz["median"], 2), f"({mc[0]:.3f}, {mc[1]:.3f})" if mc else "n/a",
                 _pct(cb["fraction_in_central_quarter"]),
                 "skipped" if oi.get("skipped") else _num(oi["mean_iou"]),
                 "skipped" if oi.get("skipped") else _pct(oi["fraction_iou_ge_0.5"]),
                 _num(ds["mean_iou"]), _pct(ds["fraction_iou_ge_0.5"]), str(d["problem_count"])]
        lines.append("| " + " | ".join(cells) + " |")
    small, medium, large = (SIZE_CLASSES[k] for k in ("small", "medium", "large"))
    lines += ["", "Definitions (exact ones in `calibnet.analysis.stats`): centre = "
              f"{datasets[0]['center_bias']['center'] if datasets else 'centroid'} in normalized coordinates; "
              "size = instance pixels / image pixels; obj/inst IoU = IoU(union of instances, salient-object map "
              f">= {SALIENCY_THRESHOLD}); depth IoU = IoU(near side of Otsu's split of the depth map, salient map); "
              f"matching curves over t = {MATCH_THRESHOLDS[0]:g}..{MATCH_THRESHOLDS[-1]:g} step 0.01. Size classes: "
              f"small <= {small[1]:g}, medium {medium[0]:g}..{medium[1]:g}, large >= {large[0]:g} of the image.", ""]
    for d in datasets:
        oi = d["objects_instances"]
        lines += [f"## {d['name']}", ""]
        sc = d["instance_size"]["classes"]["count"]
        lines.append(f"- sizes: small {sc['small']}, medium {sc['medium']}, large {sc['large']} instances; "
                     f"mean {_pct(d['instance_size']['mean'], 2)}")
        lines.append(f"- images without instances: {d['instances_per_image']['images_without_instances']}, "
                     f"most instances in one image: {d['instances_per_image']['max']}")
        if oi.get("skipped"):
            lines.append(f"- objects/instances: skipped ({oi['note']})")
        else:
            lines.append(f"- objects/instances: {oi['instances_mostly_outside']} instances more than half outside "
                         f"the salient map ({oi['instances_entirely_outside']} entirely); mean share of instance "
                         f"pixels outside it {_pct(oi['mean_outside_fraction'])}")
        ds = d["depth_saliency"]
        lines.append(f"- depth/saliency (against {ds['salient_reference']}): mean Otsu threshold "
                     f"{_num(ds['mean_otsu_threshold'], 1)}, constant depth maps {ds['constant_depth_maps']}")
        if d.get("predictions"):
            lines += _prediction_lines(d["predictions"])
        leave = d["worst"].get("instances_leave_salient_region", [])
        if leave:
            lines += ["", "Images whose instance labels leave the salient region most (the paper's Fig. 7 case):", "",
                      "| image | outside | IoU | instances |", "|---|---|---|---|"]
            lines += [f"| `{w['image']}` | {_pct(w['outside_fraction'])} | {_num(w['object_iou'])} | {w['instances']} |"
                      for w in leave[:MD_WORST]]
        dis = d["worst"].get("depth_disagrees", [])
        if dis:
            lines += ["", "Images whose depth disagrees most with the salient region:", "",
                      "| image | depth | IoU | Otsu T | near share |", "|---|---|---|---|---|"]
            lines += [f"| `{w['image']}` | `{w['depth']}` | {_num(w['depth_iou'])} | {w['otsu_threshold']} | "
                      f"{_pct(w['near_fraction'])} |" for w in dis[:MD_WORST]]
        if d["problems"]:
            lines += ["", f"Problems ({len(d['problems'])}; all in `{REPORT_JSON}`):", ""]
            lines += [f"- `{p['file']}`: {p['problem']}" for p in d["problems"][:MD_WORST]]
        lines.append("")
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({Path(p).name})" for name, p in figures.items()] + [""]
    return "\n".join(lines)


def _prediction_lines(p: dict[str, Any]) -> list[str]:
    ap = p["AP"]
    lines = ["", f"Predictions ({p['detections']} detections; statistics of those with score >= "
             f"{p['score_threshold']}): AP {_num(ap['AP'], 1)}, AP50 {_num(ap['AP50'], 1)}, AP70 {_num(ap['AP70'], 1)}",
             "", "| axis | group | images | gt instances | AP | AP50 | AP70 |", "|---|---|---|---|---|---|---|"]
    for label, row in p["AP_by_size"].items():
        lines.append(f"| size | {label} | | {row['num_gt']} | {_num(row['AP'], 1)} | {_num(row['AP50'], 1)} | "
                     f"{_num(row['AP70'], 1)} |")
    axis_names = {"depth_iou": "depth/saliency IoU", "object_iou": "objects/instances IoU"}
    for axis, table in (("gt instances / image", p["AP_by_instance_count"]),
                        *((axis_names.get(k, k), v) for k, v in p["AP_by_consistency"].items())):
        for label, row in table.items():
            lines.append(f"| {axis} | {label} | {row['images']} | {row['num_gt']} | {_num(row['AP'], 1)} | "
                         f"{_num(row['AP50'], 1)} | {_num(row['AP70'], 1)} |")
    c = p["comparison"]
    lines += ["", f"- instances per image: predicted {_num(c['count_mean_predicted'])} vs ground truth "
              f"{_num(c['count_mean_ground_truth'])}; exact count {_pct(c['count_exact'])}, mean |error| "
              f"{_num(c['count_mean_abs_error'])}; IoU(predicted union, ground-truth union) mean "
              f"{_num(c['union_iou_mean'])}"]
    return lines


def write_reports(analyses: Sequence[DatasetAnalysis], out_dir: str | Path,
                  predictions: Mapping[str, dict[str, Any]] | None = None, figures: bool = True,
                  per_image: bool = True, notes: Sequence[str] = ()) -> dict[str, Any]:
    """Write ``analysis.json``, the figures (when matplotlib is there and ``figures``) and ``summary.md``
    into ``out_dir``; returns {"json", "markdown", "figures", "notes"}."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    notes = list(notes)
    datasets = []
    for a in analyses:
        d = a.to_json(per_image=per_image)
        if predictions and a.name in predictions:
            d["predictions"] = predictions[a.name]
        datasets.append(_finite(d))
    written: dict[str, Path] = {}
    if figures:
        try:
            written = write_figures(datasets, out)
        except PlottingUnavailable as exc:
            notes.append(str(exc))
    doc = {"datasets": datasets, "figures": {k: str(v) for k, v in written.items()}, "notes": notes}
    json_path = out / REPORT_JSON
    json_path.write_text(json.dumps(doc, default=_json_default))
    md_path = out / REPORT_MD
    md_path.write_text(markdown_summary(datasets, written, notes))
    return {"json": json_path, "markdown": md_path, "figures": written, "notes": notes}
