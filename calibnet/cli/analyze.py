"""calibnet-analyze: the CalibNet paper's data-set analysis (Section III-B, Figs. 4-7) for RGB-D SIS data sets.

Statistics (exact definitions in calibnet.analysis.stats): instances per image; instance centre bias
(mask centroid, or --center box); instance size (instance pixels / image pixels, log bins);
objects/instances consistency (IoU of the union of instances with the salient-object map, matching
curves); depth/saliency consistency (Otsu's split of the depth map, near side = foreground, IoU with the
salient map, matching curves). Without --saliency-dir the union of instances stands in for the salient
map, and the objects/instances consistency is skipped with a note.

Examples:
  calibnet-analyze --dataset come15k_test_e dsis_test sip_test --data-root /data --out out/analysis
  calibnet-analyze --json my/annotations.json --image-root my/RGB --depth-root my/depth \\
      --saliency-dir my/GT --out out/mine
  calibnet-analyze --dataset dsis_test --data-root /data --saliency-dir /data/DSIS/GT \\
      --results out/eval/calibnet_onnx/dsis_test_results.json --out out/analysis-dsis

--saliency-dir and --results take one value per data set, in the order the data sets are given
(registered names first, then --json), or NAME=PATH pairs.

Writes <out>/analysis.json (every statistic: histograms with bin edges, curves with thresholds, means,
per-image rows, problems), <out>/summary.md, and one PNG per figure (matplotlib; skipped with a note when
it is not installed). A missing or mismatched file is named (in the summary and the JSON) and the rest of
the data set is still analysed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calibnet.analysis.dataset import analyze_dataset
from calibnet.analysis.plots import plotting_available
from calibnet.analysis.predictions import analyze_predictions
from calibnet.analysis.report import write_reports
from calibnet.analysis.stats import CENTER_KINDS
from calibnet.data.registry import DatasetError, DatasetSpec
from calibnet.runtime.core.depth import DEFAULT_DIRECTION, DEPTH_DIRECTIONS
from calibnet.runtime.core.targets import install_hint

from .app import CliError, parser, run_cli
from .options import add_dataset, add_output, dataset_specs

__all__ = ["build_parser", "main"]


def _per_dataset(values: Sequence[str] | None, specs: Sequence[DatasetSpec], option: str) -> dict[str, Path]:
    """``--option`` values matched to data sets: NAME=PATH pairs, or one plain path per data set in order."""
    if not values:
        return {}
    names = [s.name for s in specs]
    pairs = [v.split("=", 1) for v in values if "=" in v and v.split("=", 1)[0] in names]
    if pairs and len(pairs) == len(values):
        return {k: Path(v) for k, v in pairs}
    if pairs:
        raise CliError(f"{option}: give NAME=PATH for every data set or plain paths for all, not a mix")
    if len(values) != len(specs):
        raise CliError(f"{option}: {len(values)} value(s) for {len(specs)} data set(s) ({', '.join(names)}); give one "
                       "per data set in order, or NAME=PATH pairs")
    return {n: Path(v) for n, v in zip(names, values)}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.2f}"


def run(args: argparse.Namespace) -> int:
    """Analyse every data set, compare predictions where given, write the reports; print a table."""
    specs = dataset_specs(args)  # DatasetError: a user error (main)
    saliency = _per_dataset(args.saliency_dir, specs, "--saliency-dir")
    results = _per_dataset(args.results, specs, "--results")
    for what, table in (("salient-object map folder", saliency), ("results file", results)):
        for name, path in table.items():
            if not path.exists():
                raise CliError(f"{name}: {what} not found: {path}")
    notes: list[str] = []
    figures = not args.no_figures and plotting_available()
    if not args.no_figures and not figures:
        hint = install_hint("analysis")
        notes.append(f"figures skipped: matplotlib is not installed (pip install matplotlib, or {hint})")
    analyses, predictions = [], {}
    for spec in specs:
        a = analyze_dataset(spec, saliency.get(spec.name), center=args.center, depth_direction=args.depth_direction,
                            limit=args.limit, progress=not args.no_progress, worst=args.worst)
        if spec.name not in saliency:
            notes.append(f"{spec.name}: no salient-object maps (--saliency-dir): the union of instances stands in; "
                         "objects/instances consistency skipped")
        for p in a.problems[:5]:
            print(f"calibnet-analyze: {spec.name}: {p['file']}: {p['problem']}", file=sys.stderr)
        if len(a.problems) > 5:
            print(f"calibnet-analyze: {spec.name}: {len(a.problems) - 5} more problems in analysis.json",
                  file=sys.stderr)
        analyses.append(a)
        if spec.name in results:
            try:
                predictions[spec.name] = analyze_predictions(a, results[spec.name],
                                                             score_threshold=args.score_threshold, center=args.center)
            except DatasetError as exc:
                raise CliError(f"{spec.name}: {exc}") from None
    written = write_reports(analyses, args.out, predictions, figures=figures,
                            per_image=not args.no_per_image, notes=notes)
    print(f"{'data set':<20} {'images':>7} {'inst/img':>8} {'med size':>9} {'obj IoU>=.5':>11} "
          f"{'depth IoU>=.5':>13} {'problems':>8} {'s':>6}")
    for a in analyses:
        s = a.summary
        oi = s["objects_instances"]
        print(f"{a.name:<20} {s['images']:>7} {_fmt(s['instances_per_image']['mean']):>8} "
              f"{_fmt(s['instance_size']['median'], True):>9} "
              f"{'skipped' if oi.get('skipped') else _fmt(oi['fraction_iou_ge_0.5'], True):>11} "
              f"{_fmt(s['depth_saliency']['fraction_iou_ge_0.5'], True):>13} {len(a.problems):>8} {a.seconds:>6.1f}")
        if a.name in predictions:
            ap = predictions[a.name]["AP"]
            by = predictions[a.name]["AP_by_size"]
            print(f"  predictions: AP {_fmt(ap['AP'])}  AP50 {_fmt(ap['AP50'])}  AP70 {_fmt(ap['AP70'])}  by size "
                  + "  ".join(f"{k} {_fmt(v['AP'])}" for k, v in by.items()))
    for n in written["notes"]:
        print(f"calibnet-analyze: note: {n}", file=sys.stderr)
    print(f"wrote {written['json']}, {written['markdown']}"
          + (f" and {len(written['figures'])} figures" if written["figures"] else ""), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-analyze``."""
    p = parser("calibnet-analyze", __doc__)
    g = add_dataset(p.add_argument_group("data sets"))
    g.add_argument("--saliency-dir", nargs="+", metavar="DIR",
                   help="folder(s) of object-level salient maps (<file stem>.png, 0/255), one per data set or NAME=DIR")
    g.add_argument("--limit", type=int, help="analyse only the first N images (by image id) of each data set")
    a = p.add_argument_group("statistics")
    a.add_argument("--center", choices=CENTER_KINDS, default="centroid",
                   help="instance centre: mask centroid (default) or bounding-box centre")
    a.add_argument("--depth-direction", choices=DEPTH_DIRECTIONS, default=DEFAULT_DIRECTION,
                   help="convention of 8-bit depth maps (default near-dark: calibnet's and COME15K/SIP's)")
    a.add_argument("--results", nargs="+", metavar="RESULTS",
                   help="COCO results json(s) of a model (calibnet-eval / calibnet-infer), one per data set or "
                        "NAME=FILE: AP by instance size, by instance count, by consistency; predicted statistics")
    a.add_argument("--score-threshold", type=float, default=0.5,
                   help="predictions with at least this score count as instances in the predicted statistics "
                        "(AP uses all; default 0.5)")
    o = p.add_argument_group("output")
    add_output(o, "out/analysis")
    o.add_argument("--worst", type=int, default=20, help="images named in each 'look at these' list (default 20)")
    o.add_argument("--no-figures", action="store_true", help="JSON and markdown only")
    o.add_argument("--no-per-image", action="store_true", help="leave the per-image rows out of analysis.json")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-analyze``; returns 0, or 2 for a user error."""
    return run_cli("calibnet-analyze", build_parser(), run, argv, files=lambda a: [a.json, *(a.results or [])])


if __name__ == "__main__":
    raise SystemExit(main())
