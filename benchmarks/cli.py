"""calibnet-bench: parameters, MACs, latency/FPS per stage and (optionally) accuracy per backend, next to an
official-style PyTorch baseline and the paper's figures.

Examples:
  calibnet-bench --config r50 --backends torch,onnxruntime --height 320 --width 480 --iters 10 --threads 2 \\
      --compare-paper --json out/bench/r50.json --plot out/bench/r50.png
  calibnet-bench --config r50 --weights model_final.pth --backends torch,onnxruntime,tensorrt
  calibnet-bench --config r18 --height 64 --width 96 --iters 1 --warmup 0 --json r18.json --plot r18.png
  calibnet-bench --config r50 --weights model_final.pth --accuracy /data/COME15K/annotations/test_e.json \\
      --image-root /data/COME15K/COME-E/RGB --depth-root /data/COME15K/COME-E/depth --accuracy-limit 200
  calibnet-bench --weights model_final.pth --accuracy dsis_test --data-root /data

What is measured, in one run:
  * parameters: total (the paper's convention: the training model, aux heads included) and without the
    training-only heads, by module;
  * MACs with fvcore's rules (1 multiply-add = 1 flop, what the paper's GFLOPs means), by module, at the
    network size and at the padded sizes common data-set aspect ratios get; FLOPs = 2 x MACs, labelled;
  * the machine's float32 matmul (SGEMM) peak, and each backend's achieved model GFLOP/s as a share of it;
  * latency per backend, split into pre-processing, inference, post-processing and end to end (p50, p90,
    p99; iterations interleaved across backends), FPS and the speed-up over the official-style path:
    Pillow resize + torch normalize/pad, the eager model with the pure-PyTorch deformable attention,
    the official post-processing in torch.

Backends: torch (the runtime's numpy pre/post-processing around the eager model), onnxruntime (a portable
ONNX export on the CPU execution provider), tensorrt (an FP16 engine; reported "unavailable" without
TensorRT and a GPU). Each row has a status: passed / exported but validation failed / export failed /
unavailable: reason.

The frame is a synthetic RGB-D scene (calibnet.data.synthetic.make_scene) whose size resizes exactly to
the network size under the official resize (480x720 for 320x480); --frame picks another (e.g. 375x500).
Without --weights the deterministic initialization is used: latency and MACs do not depend on the
weights, but every kernel passes the score threshold, so post-processing handles all 50 instances
(the worst case) and accuracy is meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


class BenchError(Exception):
    """A user error: printed as one line, exit code 2."""


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 375x500, got {text!r}") from exc
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"frame must be at least 32x32, got {text}")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    """The calibnet-bench argument parser."""
    p = argparse.ArgumentParser(prog="calibnet-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="r50", help="preset (r50, r101, r34, r18) or official YAML (default r50)")
    p.add_argument("--weights", default=None, help="checkpoint (default: deterministic weights)")
    p.add_argument("--backends", default="torch,onnxruntime",
                   help="comma-separated: torch, onnxruntime, tensorrt (default torch,onnxruntime)")
    p.add_argument("--height", type=int, default=320, help="network input height, multiple of 32 (320)")
    p.add_argument("--width", type=int, default=480, help="network input width, multiple of 32 (480)")
    p.add_argument("--batch", type=int, default=1, help="frames per call (1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds (2)")
    p.add_argument("--iters", type=int, default=10, help="timed rounds (10)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime (2)")
    p.add_argument("--frame", type=_hw, default=None,
                   help="frame size HxW before resizing (default: the size that resizes to the network size)")
    p.add_argument("--json", default=None, help="write the results as JSON here")
    p.add_argument("--plot", default=None, help="write a PNG of the stage latencies here")
    p.add_argument("--compare-paper", action="store_true", help="add the paper-vs-here table")
    p.add_argument("--accuracy", default=None, metavar="DATASET_JSON",
                   help="mask AP per backend (calibnet.evaluation.run_eval) on a data set: a COCO annotation file "
                        "(RGB/ and depth/ beside it, or --image-root/--depth-root), a JSON spec {name, json_file, "
                        "image_root, depth_root}, or a registered name (come15k_test_e, dsis_test... with "
                        "--data-root)")
    p.add_argument("--image-root", default=None, help="RGB folder for a COCO --accuracy file")
    p.add_argument("--depth-root", default=None, help="depth folder for a COCO --accuracy file")
    p.add_argument("--data-root", default=None, help="root of the registered data sets (default $CALIBNET_DATASETS)")
    p.add_argument("--accuracy-limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--workdir", default=None, help="keep exported ONNX files / engines here (default: a temp dir)")
    p.add_argument("--sgemm-size", type=int, default=2048, help="matrix size of the SGEMM peak measurement (2048)")
    p.add_argument("--no-dataset-sizes", action="store_true", help="skip the MAC counts at data-set sizes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _check_args(args: argparse.Namespace) -> list[str]:
    from .backends import KNOWN_BACKENDS

    if args.height % 32 or args.width % 32 or args.height < 32 or args.width < 32:
        raise BenchError(f"--height and --width must be positive multiples of 32, got {args.height}x{args.width}")
    for name, v, lo in (("--iters", args.iters, 1), ("--warmup", args.warmup, 0), ("--threads", args.threads, 1),
                        ("--batch", args.batch, 1), ("--sgemm-size", args.sgemm_size, 16)):
        if v < lo:
            raise BenchError(f"{name} must be >= {lo}, got {v}")
    backends = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in KNOWN_BACKENDS]
    if unknown or not backends:
        raise BenchError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}: choose from "
                         f"{', '.join(KNOWN_BACKENDS)}")
    if args.weights and not Path(args.weights).is_file():
        raise BenchError(f"weights file not found: {args.weights}")
    return list(dict.fromkeys(backends))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} logical CPUs"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _config(name: str, height: int, width: int) -> tuple[Any, str]:
    from calibnet.config import ConfigError, get_config

    try:
        cfg = get_config(name)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise BenchError(str(exc)) from exc
    note = f"official resize: short side {cfg.input.min_size_test}, long side <= {cfg.input.max_size_test}"
    if min(height, width) < cfg.input.min_size_test:
        cfg = cfg.replace(**{"input.min_size_test": min(height, width), "input.max_size_test": max(height, width)})
        note = (f"resize scaled to the small network size: short side {cfg.input.min_size_test}, long side <= "
                f"{cfg.input.max_size_test}")
    return cfg, note


def _default_frame(height: int, width: int) -> tuple[int, int]:
    return round(height * 1.5), round(width * 1.5)


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    if quiet:
        return None
    from tqdm import tqdm

    return lambda it, desc: tqdm(it, desc=desc, unit="round", file=sys.stderr, leave=False)


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def dataset_spec(args: argparse.Namespace) -> Any:
    """The :class:`calibnet.data.DatasetSpec` that ``--accuracy`` names (checked: files and folders exist)."""
    from calibnet.data import DatasetError, resolve_dataset

    try:
        return resolve_dataset(args.accuracy, args.data_root, args.image_root, args.depth_root)
    except DatasetError as exc:
        raise BenchError(f"--accuracy: {exc}") from exc


def _accuracy(args: argparse.Namespace, spec: Any, prepared: list[Any]) -> dict[str, Any]:
    """Mask AP (percent) per runnable backend via :func:`calibnet.evaluation.run_eval`."""
    from calibnet.evaluation import run_eval

    out: dict[str, Any] = {"dataset": spec.name, "limit": args.accuracy_limit, "backends": {}}
    for p in prepared:
        if p.runnable:
            _say(f"evaluating {p.name} on {spec.name}", args.quiet)
            out["backends"][p.name] = run_eval(p.runtime, spec, out_dir=None, progress=not args.quiet,
                                               limit=args.accuracy_limit)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the JSON document (also written / printed per the arguments)."""
    backends = _check_args(args)
    import numpy as np
    import onnxruntime as ort
    import torch

    import calibnet
    from calibnet.data.synthetic import make_scene

    from .backends import prepare_backend
    from .flops import count_model_macs
    from .latency import RuntimePath, interleave
    from .model_stats import model_stats, padded_network_size
    from .official_path import OfficialStylePath
    from .report import BASELINE, backend_entry
    from .sgemm import measure_sgemm

    quiet = args.quiet
    spec = dataset_spec(args) if args.accuracy else None  # fail early on a bad data set
    load_start = _loadavg()
    torch.set_num_threads(args.threads)
    cfg, resize_note = _config(args.config, args.height, args.width)
    frame_hw = args.frame or _default_frame(args.height, args.width)
    resized, padded = padded_network_size(*frame_hw, cfg.input.min_size_test, cfg.input.max_size_test,
                                          cfg.input.size_divisibility)
    if resized[0] > args.height or resized[1] > args.width:
        raise BenchError(f"a {frame_hw[0]}x{frame_hw[1]} frame resizes to {resized[0]}x{resized[1]}, which does not "
                         f"fit the {args.height}x{args.width} network input; pick --frame or --height/--width")
    _say(f"building {args.config} ({'weights ' + args.weights if args.weights else 'deterministic weights'})", quiet)
    try:
        model = calibnet.build_model(cfg, args.weights, quiet=True)
    except Exception as exc:  # a checkpoint that does not fit the config is a user error
        raise BenchError(f"cannot build the model: {exc}") from exc
    scenes = [make_scene(seed=i, height=frame_hw[0], width=frame_hw[1]) for i in range(args.batch)]
    rgbs, depths = [s.rgb for s in scenes], [s.depth for s in scenes]

    _say("counting parameters and MACs", quiet)
    stats = model_stats(model, args.height, args.width, dataset_sizes=not args.no_dataset_sizes)
    _say(f"measuring the SGEMM peak ({args.sgemm_size}x{args.sgemm_size} float32)", quiet)
    sgemm = measure_sgemm(args.sgemm_size, args.threads)

    with tempfile.TemporaryDirectory(prefix="calibnet-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        prepared = []
        for name in backends:
            _say(f"preparing backend {name}", quiet)
            prepared.append(prepare_backend(name, model, workdir, args.height, args.width, args.batch,
                                            args.threads, rgbs[0], depths[0], args.weights))
            _say(f"  {name}: {prepared[-1].status}", quiet)
        baseline = OfficialStylePath(model, rgbs, depths)
        paths = [baseline, *(RuntimePath(p.name, p.runtime, rgbs, depths) for p in prepared if p.runnable)]
        _say(f"timing {', '.join(p.name for p in paths)}: {args.warmup} warm-up + {args.iters} timed rounds, "
             "interleaved", quiet)
        times = interleave(paths, args.warmup, args.iters, _progress(quiet))
        macs_cache: dict[tuple[int, int], float] = {(args.height, args.width): stats.macs.gmacs}

        def gmacs_at(hw: tuple[int, int]) -> float:
            if hw not in macs_cache:
                macs_cache[hw] = count_model_macs(model, *hw).gmacs
            return macs_cache[hw]

        base_summary = times[BASELINE].summary_ms()
        base_p50 = base_summary["e2e"]["p50"]
        base_instances = len(baseline.last_results[0]["scores"]) if baseline.last_results else None
        doc_backends: dict[str, Any] = {}
        for p in prepared:
            extra: dict[str, Any] = {"precision": p.precision, "detail": p.detail, "validation": p.validation,
                                     "artifact": p.artifact.name if p.artifact else None}
            if not p.runnable:
                doc_backends[p.name] = backend_entry(p.status, None, base_p50, args.batch, None, sgemm.peak_gflops,
                                                     p.artifact_mb, extra)
                continue
            net_hw = tuple(int(v) for v in p.runtime.prepare(rgbs[0], depths[0]).rgb.shape[-2:])
            path = next(x for x in paths if x.name == p.name)
            extra.update(network_hw=list(net_hw), instances=len(path.last_predictions[0]))  # type: ignore[attr-defined]
            doc_backends[p.name] = backend_entry(p.status, times[p.name].summary_ms(), base_p50, args.batch,
                                                 gmacs_at(net_hw), sgemm.peak_gflops, p.artifact_mb, extra)  # type: ignore[arg-type]
        baseline_entry = backend_entry(
            "passed (reference path)", base_summary, base_p50, args.batch, gmacs_at(baseline.network_hw),
            sgemm.peak_gflops, None,
            {"network_hw": list(baseline.network_hw), "instances": base_instances,
             "detail": "Pillow ResizeShortestEdge + torch normalize/pad, eager model with grid_sample MSDA, "
                       "official post-processing in torch"})
        accuracy = _accuracy(args, spec, prepared) if spec is not None else None

    msda = "grid_sample reference (official CPU fallback)"
    doc: dict[str, Any] = {
        **stats.to_dict(),
        "sgemm_gflops": sgemm.peak_gflops,
        "sgemm": sgemm.to_dict(),
        "baseline": baseline_entry,
        "backends": doc_backends,
        "setup": {
            "config": args.config, "weights": args.weights or "deterministic weights (seed 0)",
            "height": args.height, "width": args.width, "batch": args.batch, "warmup": args.warmup,
            "iters": args.iters, "threads": args.threads, "frame_hw": list(frame_hw),
            "frame": f"synthetic RGB-D scene (make_scene seeds 0..{args.batch - 1}), resized to "
                     f"{resized[0]}x{resized[1]}, padded to {padded[0]}x{padded[1]}",
            "resize": resize_note, "msda_eager": msda, "cpu": _cpu_name(), "torch": torch.__version__,
            "onnxruntime": ort.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "loadavg_start": load_start, "loadavg_end": _loadavg(),
            "units": "ms per batch of --batch frames; fps = frames per second",
        },
    }
    if accuracy is not None:
        doc["accuracy"] = accuracy
    return doc


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-bench``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        doc = run(args)
    except BenchError as exc:
        print(f"calibnet-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("calibnet-bench: interrupted", file=sys.stderr)
        return 130
    from .report import format_report, plot_stages

    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2))
    if args.plot:
        plot_stages(doc, args.plot)
    print(format_report(doc, compare_paper=args.compare_paper))
    if not args.weights:
        print("note: deterministic weights: latency and MACs are representative, masks and scores are not "
              "(every kernel passes the score threshold, so post-processing handles all instances).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
