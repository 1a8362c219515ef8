"""calibnet-eval: mask AP / AP50 / AP70 of CalibNet models on RGB-D instance data sets, on any backend.

MODEL is an exported model or a checkpoint (the file type picks the backend: see MODEL below; a checkpoint runs
the PyTorch reference, give its --config). Give several models to compare them on the same images: the summary
adds each model's difference to the first (e.g. checkpoint vs ONNX vs FP16 engine), and --max-drop
makes the command fail when export lost more AP than allowed.

Examples:
  calibnet-eval calibnet.onnx --dataset come15k_test_e come15k_test_h dsis_test sip_test --data-root /data
  calibnet-eval model_final.pth calibnet.onnx calibnet_fp16.engine --config r50 --dataset dsis_test \\
      --data-root /data --max-drop 0.5
  calibnet-eval calibnet.onnx --json my/annotations.json --image-root my/RGB --depth-root my/depth
  # OpenVINO precisions against FP32 on the same images (AP50 may drop at most 1.5 points)
  calibnet-eval calibnet.onnx calibnet_int8.xml --backend openvino --precisions f32,bf16 --dataset dsis_test \
      --data-root /data --max-drop 1.5 --drop-metric AP50

  # how much each depth-sensor failure costs (every corruption at severities 1, 3, 5, clean and RGB-only
  # rows): depth_robustness.json / .md / .png per model and data set
  calibnet-eval calibnet.onnx --dataset dsis_test --data-root /data --depth-corruption all --severity 1,3,5

Official data set names (relative to the data root, as registered by the official code):
  come15k_train, come15k_test_e, come15k_test_h, dsis_test, sip_test
The data root defaults to $CALIBNET_DATASETS, else $DETECTRON2_DATASETS. Without --depth-root the depth
folder follows the official rule (RGB -> depth, imgs_right -> depths), depth files are .png.

Writes <out>/<model>/<dataset>_results.json (COCO results) per model and data set, and
<out>/summary.json; prints a table of AP, AP50, AP70 (percent, the paper's columns) per data set.
With --depth-corruption: the depth-robustness study instead (calibnet.evaluation.depth_robustness), into
<out>/<model>/<dataset>/depth_robustness.{json,md,png} and depth_health_frames.json; prints its tables.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from calibnet.config import DEFAULT_PRESET, PRESETS
from calibnet.data.registry import DatasetSpec
from calibnet.evaluation.depth_corruptions import CORRUPTIONS
from calibnet.evaluation.depth_robustness import RobustnessOptions, depth_robustness, format_tables
from calibnet.evaluation.runner import run_eval
from calibnet.runtime.core.targets import read_metadata, resolve_target

from .app import CliError, parser, run_cli
from .options import add_dataset, add_model, add_output, dataset_specs, open_options, open_runtime

__all__ = ["build_parser", "format_table", "main", "run"]

COLUMNS = ("AP", "AP50", "AP70")


def _model_tags(models: list[Path]) -> list[str]:
    tags = [m.name.replace(".", "_") for m in models]
    return [t if tags.count(t) == 1 else f"{i}_{t}" for i, t in enumerate(tags)]


def _fmt(v: float) -> str:
    return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:5.1f}"


def format_table(rows: list[dict[str, Any]], models: list[str], datasets: list[str]) -> str:
    """One row per model (and, with several models, one row of differences to the first per model); for
    each data set the AP, AP50, AP70 columns, as in the paper's table."""
    by = {(r["model"], r["dataset"]): r for r in rows}
    name_w = max([len("model")] + [len(m) + 4 for m in models])
    head1 = " " * name_w + "".join(f" | {d:^20.20}" for d in datasets) + " | ms/img"
    head2 = f"{'model':<{name_w}}" + "".join(" | " + " ".join(f"{c:>6}" for c in COLUMNS) for _ in datasets) + " |"
    lines = [head1, head2, "-" * len(head2)]
    for m in models:
        ms = [by[(m, d)]["ms_per_image"] for d in datasets]
        cells = "".join(" | " + " ".join(f"{_fmt(by[(m, d)][c]):>6}" for c in COLUMNS) for d in datasets)
        lines.append(f"{m:<{name_w}}{cells} | {sum(ms) / len(ms):6.1f}")
        if m != models[0]:
            deltas = "".join(" | " + " ".join(f"{by[(m, d)][c] - by[(models[0], d)][c]:+6.1f}" for c in COLUMNS)
                             for d in datasets)
            lines.append(f"{'  Δ':<{name_w}}{deltas} |")
    return "\n".join(lines)


def _model_runs(models: list[Path], args: argparse.Namespace) -> list[tuple[Path, str | None]]:
    """(model, precision or None) to evaluate: with ``--precisions``, each model whose backend has a choice of
    precision once per precision it takes from the same file (a file that holds one precision, e.g. an INT8 IR,
    only at that one)."""
    precisions = [p.strip() for p in (args.precisions or "").split(",") if p.strip()]
    runs: list[tuple[Path, str | None]] = []
    for m in models:
        try:
            target = resolve_target(m, args.backend)
        except ValueError:
            target = None
        if target is None or not precisions or len(target.precisions) <= 1:
            runs.append((m, None))
            continue
        try:
            held = read_metadata(m).precision
        except (OSError, ValueError):
            held = ""
        same_file = [p for p in precisions if p in target.precisions and target.artifact(p) == target.artifact()]
        runs.extend((m, p) for p in ([held] if held in target.precisions else same_file))
    return runs


def _evaluate_model(path: Path, tag: str, specs: list[DatasetSpec], args: argparse.Namespace,
                    out: Path, precision: str | None = None) -> list[dict[str, Any]]:
    """The result rows of one model on every data set; its runtime is closed afterwards."""
    rows = []
    with open_runtime(path, open_options(args, precision=precision)) as runtime:
        backend = getattr(runtime.backend, "name", type(runtime.backend).__name__)
        how: dict[str, Any] = {}
        if hasattr(runtime.backend, "precision_reason"):  # OpenVINO: which precision runs, and why
            backend = f"{backend}-{runtime.backend.precision}"
            how = {"openvino": runtime.backend.describe()}
            print(f"{tag}: {how['openvino']}", file=sys.stderr)
        for spec in specs:
            m = run_eval(runtime, spec, out_dir=out, progress=not args.no_progress, limit=args.limit)
            rows.append({"model": tag, "model_path": str(path), "backend": backend, "dataset": spec.name, **how, **m})
            print(f"{tag} on {spec.name}: AP {_fmt(m['AP'])}  AP50 {_fmt(m['AP50'])}  AP70 {_fmt(m['AP70'])}  "
                  f"({m['images']} images, {m['ms_per_image']:.1f} ms/img) -> {m['results_json']}", file=sys.stderr)
    return rows


def run(args: argparse.Namespace) -> int:
    """Evaluate every model on every data set; write results, summary.json, print the table."""
    specs = dataset_specs(args)
    runs = _model_runs([Path(m) for m in args.models], args)
    tags = _model_tags([m.with_name(m.name + ("" if p is None else f".{p}")) for m, p in runs])
    out = Path(args.out)
    if args.depth_corruption:
        return _robustness(args, specs, runs, tags, out)
    rows: list[dict[str, Any]] = []
    for (path, precision), tag in zip(runs, tags):
        rows.extend(_evaluate_model(path, tag, specs, args, out / tag, precision))
    table = format_table(rows, tags, [s.name for s in specs])
    print(table)
    failures = []
    if args.max_drop is not None:
        c, first = args.drop_metric, {r["dataset"]: r for r in rows if r["model"] == tags[0]}
        for r in rows:
            ref = first[r["dataset"]]
            if r["model"] != tags[0] and ref[c] - r[c] > args.max_drop:
                failures.append(f"{r['model']} on {r['dataset']}: {c} {r[c]:.2f} is {ref[c] - r[c]:.2f} below "
                                f"{tags[0]} ({ref[c]:.2f}), more than --max-drop {args.max_drop}")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"models": [{"tag": t, "path": str(p)} for t, (p, _) in zip(tags, runs)],
               "datasets": [{"name": s.name, "json_file": str(s.json_file), "image_root": str(s.image_root),
                             "depth_root": str(s.depth_root)} for s in specs],
               "limit": args.limit, "results": rows, "table": table, "max_drop_failures": failures}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {out / 'summary.json'}", file=sys.stderr)
    for f in failures:
        print(f"calibnet-eval: accuracy check failed: {f}", file=sys.stderr)
    return 1 if failures else 0


def robustness_options(args: argparse.Namespace) -> RobustnessOptions:
    """The :class:`RobustnessOptions` of ``--depth-corruption`` / ``--severity``; CliError naming a bad value."""
    text = args.depth_corruption.strip()
    names = CORRUPTIONS if text == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    try:
        severities = tuple(int(v) for v in args.severity.split(",") if v.strip())
    except ValueError:
        raise CliError(f"--severity wants comma-separated integers 1..5, got {args.severity!r}") from None
    try:
        return RobustnessOptions(corruptions=names, severities=severities, limit=args.limit,
                                 progress=not args.no_progress)
    except ValueError as exc:
        flag = "--severity" if "severit" in str(exc) else "--depth-corruption"
        raise CliError(f"{flag}: {exc}") from None


def _robustness(args: argparse.Namespace, specs: list[DatasetSpec], runs: list[tuple[Path, str | None]],
                tags: list[str], out: Path) -> int:
    """The depth-robustness study of every model on every data set."""
    opts = robustness_options(args)
    reports = []
    for (path, precision), tag in zip(runs, tags):
        with open_runtime(path, open_options(args, precision=precision)) as runtime:
            for spec in specs:
                folder = out / tag / spec.name
                rep = depth_robustness(runtime, spec, folder, opts)
                print(f"## {tag} on {spec.name}\n\n{format_tables(rep)}\n")
                if rep.get("figure_note"):
                    print(f"calibnet-eval: {rep['figure_note']}", file=sys.stderr)
                print(f"wrote {folder / 'depth_robustness.json'}", file=sys.stderr)
                reports.append({"model": tag, "model_path": str(path), "dataset": spec.name,
                                "folder": str(folder), "summary": rep["summary"], "roc_auc": rep["roc_auc"]})
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"depth_robustness": reports}, indent=1, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-eval``."""
    p = parser("calibnet-eval", __doc__)
    m = add_model(p.add_argument_group("models"), several=True, precision=False)
    m.add_argument("--config", help=f"checkpoints' model preset ({', '.join(PRESETS)}) or official YAML (default "
                                    f"{DEFAULT_PRESET})")
    m.add_argument("--precisions", metavar="LIST", help="models whose backend has a choice of precision (OpenVINO): "
                   "evaluate each at these precisions, e.g. f32,bf16 (an INT8 IR runs at int8); the first run is "
                   "the reference of the deltas")
    m.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="torch device, or for ONNX Runtime: cpu = CPU provider only, cuda = best available "
                        "(default cpu)")
    g = add_dataset(p.add_argument_group("data sets"))
    g.add_argument("--limit", type=int, help="evaluate only the first N images (by image id) of each data set")
    add_output(p, "out/eval")
    p.add_argument("--max-drop", type=float, help="exit 1 if a model's AP is more than this many points below "
                                                  "the first model's on any data set")
    p.add_argument("--drop-metric", choices=COLUMNS, default="AP", help="the column --max-drop checks (AP)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    r = p.add_argument_group("depth robustness (calibnet.evaluation.depth_robustness)")
    r.add_argument("--depth-corruption", metavar="all|NAME,...",
                   help="run the depth-robustness study instead: clean, RGB-only and each of these corruptions "
                        "(all: holes, edge_dropout, noise, quantization, shift, blur, missing, wrong_direction)")
    r.add_argument("--severity", default="1,3,5", metavar="S,...",
                   help="severities (1..5) of each corruption (default 1,3,5)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-eval``; returns 0, 1 (--max-drop exceeded) or 2 (user error)."""
    return run_cli("calibnet-eval", build_parser(), run, argv, files=lambda a: [*a.models, a.config])


if __name__ == "__main__":
    raise SystemExit(main())
