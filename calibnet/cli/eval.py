"""calibnet-eval: mask AP / AP50 / AP70 of CalibNet models on RGB-D instance data sets, on any backend.

MODEL is an exported .onnx (ONNX Runtime), a TensorRT .engine/.plan, or a .pth checkpoint (PyTorch
reference; give its --config). Give several models to compare them on the same images: the summary
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

Official data set names (relative to the data root, as registered by the official code):
  come15k_train, come15k_test_e, come15k_test_h, dsis_test, sip_test
The data root defaults to $CALIBNET_DATASETS, else $DETECTRON2_DATASETS. Without --depth-root the depth
folder follows the official rule (RGB -> depth, imgs_right -> depths), depth files are .png.

Writes <out>/<model>/<dataset>_results.json (COCO results) per model and data set, and
<out>/summary.json; prints a table of AP, AP50, AP70 (percent, the paper's columns) per data set.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..data.options import add_dataset_arguments, specs_from_args
from ..data.registry import DatasetError, DatasetSpec
from ..evaluation.coco_eval import EvaluationError
from ..runtime.core.errors import run_cli

__all__ = ["build_parser", "format_table", "main", "run"]

COLUMNS = ("AP", "AP50", "AP70")


class CliError(Exception):
    """A user error, printed as one line without a traceback."""


def _open_runtime(path: Path, args: argparse.Namespace, precision: str | None = None) -> Any:
    from ..runtime import BackendUnavailable, Runtime
    from ..runtime.core.runtime import backend_for

    if not path.is_file():
        raise CliError(f"model file not found: {path}")
    try:
        kind = backend_for(path, args.backend)
    except ValueError as exc:
        raise CliError(f"{exc} (--backend)") from None
    kwargs: dict[str, Any] = {}
    if kind == "torch":
        kwargs.update(config=args.config or "r50", device=args.device, threads=args.threads)
    elif kind == "openvino":
        kwargs.update(threads=args.threads, precision=precision or "auto")
    elif kind == "onnxruntime":
        kwargs.update(threads=args.threads)
        if args.device == "cpu":
            kwargs["providers"] = ["CPUExecutionProvider"]
    try:
        return Runtime.open(path, backend=kind, **kwargs)
    except (FileNotFoundError, ValueError, BackendUnavailable) as exc:
        raise CliError(f"{path}: {exc}") from None
    except Exception as exc:  # a broken file: the backend's own error type
        raise CliError(f"cannot open {path}: {type(exc).__name__}: {exc}") from None


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
    """(model, OpenVINO precision or None) to evaluate: with ``--precisions``, every OpenVINO model (``.xml``,
    or any with ``--backend openvino``) once per precision (an INT8 IR only at int8)."""
    from ..runtime.core.runtime import backend_for

    precisions = [p.strip() for p in (args.precisions or "").split(",") if p.strip()]
    runs: list[tuple[Path, str | None]] = []
    for m in models:
        try:
            openvino = backend_for(m, args.backend) == "openvino"
        except ValueError:
            openvino = False
        if not (openvino and precisions):
            runs.append((m, None))
            continue
        from ..runtime.core.contract import read_metadata

        try:
            int8 = m.suffix.lower() == ".xml" and read_metadata(m).precision == "int8"
        except (OSError, ValueError):
            int8 = False
        runs.extend((m, p) for p in (["int8"] if int8 else [p for p in precisions if p != "int8"]))
    return runs


def _evaluate_model(path: Path, tag: str, specs: list[DatasetSpec], args: argparse.Namespace,
                    out: Path, precision: str | None = None) -> list[dict[str, Any]]:
    """The result rows of one model on every data set; its runtime is closed afterwards."""
    from ..evaluation.runner import run_eval

    rows = []
    with _open_runtime(path, args, precision) as runtime:
        backend = getattr(runtime.backend, "name", type(runtime.backend).__name__)
        if hasattr(runtime.backend, "precision_reason"):  # OpenVINO: which precision runs, and why
            backend = f"{backend}-{runtime.backend.precision}"
            print(f"{tag}: OpenVINO {runtime.backend.precision} ({runtime.backend.precision_reason})", file=sys.stderr)
        for spec in specs:
            m = run_eval(runtime, spec, out_dir=out, progress=not args.no_progress, limit=args.limit)
            rows.append({"model": tag, "model_path": str(path), "backend": backend, "dataset": spec.name, **m})
            print(f"{tag} on {spec.name}: AP {_fmt(m['AP'])}  AP50 {_fmt(m['AP50'])}  AP70 {_fmt(m['AP70'])}  "
                  f"({m['images']} images, {m['ms_per_image']:.1f} ms/img) -> {m['results_json']}", file=sys.stderr)
    return rows


def run(args: argparse.Namespace) -> int:
    """Evaluate every model on every data set; write results, summary.json, print the table."""
    specs = specs_from_args(args)
    runs = _model_runs([Path(m) for m in args.models], args)
    models = [m for m, _ in runs]
    tags = _model_tags([m.with_name(m.name + ("" if p is None else f".{p}")) for m, p in runs])
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    for (path, precision), tag in zip(runs, tags):
        rows.extend(_evaluate_model(path, tag, specs, args, out / tag, precision))
    table = format_table(rows, tags, [s.name for s in specs])
    print(table)
    failures = []
    if args.max_drop is not None and len(tags) > 1:
        for r in rows:
            ref = next(x for x in rows if x["model"] == tags[0] and x["dataset"] == r["dataset"])
            c = args.drop_metric
            drop = ref[c] - r[c]
            if r["model"] != tags[0] and drop > args.max_drop:
                failures.append(f"{r['model']} on {r['dataset']}: {c} {r[c]:.2f} is {drop:.2f} below "
                                f"{tags[0]} ({ref[c]:.2f}), more than --max-drop {args.max_drop}")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"models": [{"tag": t, "path": str(p)} for t, p in zip(tags, models)],
               "datasets": [{"name": s.name, "json_file": str(s.json_file), "image_root": str(s.image_root),
                             "depth_root": str(s.depth_root)} for s in specs],
               "limit": args.limit, "results": rows, "table": table, "max_drop_failures": failures}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {out / 'summary.json'}", file=sys.stderr)
    for f in failures:
        print(f"calibnet-eval: accuracy check failed: {f}", file=sys.stderr)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-eval``."""
    p = argparse.ArgumentParser(prog="calibnet-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model(s): .onnx, .engine/.plan or .pth/.pt; the first is the reference of the comparison")
    g = add_dataset_arguments(p.add_argument_group("data sets"))
    g.add_argument("--limit", type=int, help="evaluate only the first N images (by image id) of each data set")
    m = p.add_argument_group("models")
    m.add_argument("--config", help="config of .pth checkpoints: preset (r50, r101, r18, r34) or official YAML "
                                    "(default r50)")
    m.add_argument("--backend", choices=("onnxruntime", "openvino", "tensorrt", "torch"),
                   help="override the file-type backend (.xml: openvino)")
    m.add_argument("--precisions", metavar="LIST", help="OpenVINO models: evaluate each at these precisions, e.g. "
                   "f32,bf16 (an INT8 IR runs at int8); the first run is the reference of the deltas")
    m.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="torch device, or for ONNX Runtime: cpu = CPU provider only, cuda = best available "
                        "(default cpu)")
    m.add_argument("--threads", type=int, default=0, help="CPU threads for torch / ONNX Runtime (0: default)")
    p.add_argument("--out", default="out/eval", help="output folder (default out/eval)")
    p.add_argument("--max-drop", type=float, help="exit 1 if a model's AP is more than this many points below "
                                                  "the first model's on any data set")
    p.add_argument("--drop-metric", choices=COLUMNS, default="AP", help="the column --max-drop checks (AP)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-eval``; returns 0, 1 (--max-drop exceeded) or 2 (user error)."""
    return run_cli("calibnet-eval", build_parser(), run, argv, (CliError, DatasetError, EvaluationError),
                   files=lambda a: [*a.models, a.config])


if __name__ == "__main__":
    raise SystemExit(main())
