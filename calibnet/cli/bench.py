"""calibnet-bench: parameters, MACs, latency/FPS per stage and (optionally) accuracy per backend, next to an
official-style PyTorch baseline and the paper's figures.

Examples:
  calibnet-bench --config r50 --backends torch,onnxruntime --height 320 --width 480 --iters 10 --threads 2 \\
      --compare-paper --json out/bench/r50.json --plot out/bench/r50.png
  calibnet-bench --config r50 --weights model_final.pth --backends torch,onnxruntime,tensorrt
  calibnet-bench --config r18 --height 64 --width 96 --iters 1 --warmup 0 --json r18.json --plot r18.png
  calibnet-bench --config swint --backends torch,onnxruntime --compare-paper   # also pvt, p2t
  calibnet-bench --config r50 --backends onnxruntime,openvino-bf16,openvino-int8 --profile   # + where the time goes
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
import sys
from pathlib import Path

from calibnet.benchmarks.streaming import StreamBenchOptions, format_streaming, run_streaming
from calibnet.benchmarks.suite import BenchError, BenchOptions, run_benchmark
from calibnet.data.registry import DatasetError, resolve_dataset
from calibnet.runtime.core.targets import bench_rows

from .app import parser, run_cli
from .options import add_checkpoint, add_input_size, add_threads, checkpoint_files, hw, typed_options

__all__ = ["main", "build_parser"]

PROG = "calibnet-bench"


def build_parser() -> argparse.ArgumentParser:
    """The calibnet-bench argument parser."""
    p = parser(PROG, __doc__)
    add_checkpoint(p)
    p.add_argument("--backends", default="torch,onnxruntime",
                   help=f"comma-separated rows: {', '.join(bench_rows())} (default torch,onnxruntime)")
    add_input_size(p)
    p.add_argument("--batch", type=int, default=1, help="frames per call (1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds (2)")
    p.add_argument("--iters", type=int, default=10, help="timed rounds (10)")
    add_threads(p, 2)
    p.add_argument("--frame", type=hw, default=None,
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
    p.add_argument("--int8-model", default=None, metavar="XML", help="the openvino-int8 row's INT8 IR (default: "
                   "built by the bench from --int8-calib synthetic scenes)")
    p.add_argument("--int8-calib", type=int, default=8, help="synthetic calibration scenes of the bench's INT8 IR (8)")
    p.add_argument("--profile", action="store_true", help="where the time goes, for rows whose backend counts it "
                   "(OpenVINO's performance counters, after the timed rounds): top operation types, ms and share, "
                   "and the deformable attention's share, in the report and the JSON (backends.<row>.profile)")
    st = p.add_argument_group("streaming and soak (calibnet.benchmarks.streaming; replace the backend table)")
    st.add_argument("--stream", action="store_true",
                    help="Runtime.stream vs sequential predict on a file source (throughput ratio, per-stage and "
                         "capture-to-result p50/p99), and latest vs all with a source --speedup x faster")
    st.add_argument("--soak", type=int, default=0, metavar="N",
                    help="N results of Runtime.predict, then of Runtime.stream with tracking under each policy; RSS "
                         "at warm-up and end, threads left after close()")
    st.add_argument("--soak-warmup", type=int, default=200, help="the soak's warm-up result (200)")
    st.add_argument("--stream-frames", type=int, default=100, help="frames of the --stream runs (100)")
    st.add_argument("--speedup", type=float, default=5.0, help="live source speed / model speed (5)")
    st.add_argument("--model", default=None,
                    help="an exported model for --stream/--soak (default: export --config at --height/--width)")
    return p


def _options(args: argparse.Namespace) -> BenchOptions:
    """The checked :class:`BenchOptions` of the command line."""
    for name, v, lo in (("--iters", args.iters, 1), ("--warmup", args.warmup, 0), ("--threads", args.threads, 1),
                        ("--batch", args.batch, 1), ("--sgemm-size", args.sgemm_size, 16)):
        if v < lo:
            raise BenchError(f"{name} must be >= {lo}, got {v}")
    rows = bench_rows()
    backends = list(dict.fromkeys(b.strip().lower() for b in args.backends.split(",") if b.strip()))
    unknown = [b for b in backends if b not in rows]
    if unknown or not backends:
        raise BenchError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(rows)}")
    if args.weights and not Path(args.weights).is_file():
        raise BenchError(f"weights file not found: {args.weights}")
    try:
        spec = (resolve_dataset(args.accuracy, args.data_root, args.image_root, args.depth_root)
                if args.accuracy else None)
    except DatasetError as exc:
        raise BenchError(f"--accuracy: {exc}") from exc
    return typed_options(BenchOptions, args, backends=tuple(backends), accuracy=spec,
                         dataset_sizes=not args.no_dataset_sizes)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the command line describes, print the report, write the JSON / PNG."""
    streaming = args.stream or args.soak
    if streaming:
        opts = typed_options(StreamBenchOptions, args)
        doc = run_streaming(opts, lambda msg: None if args.quiet else print(msg, file=sys.stderr, flush=True))
    else:
        doc = run_benchmark(_options(args))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2))
    if streaming:
        print(format_streaming(doc))
        return 0
    from calibnet.benchmarks.report import format_report, plot_stages  # imports torch

    if args.plot:
        plot_stages(doc, args.plot)
    print(format_report(doc, compare_paper=args.compare_paper))
    if not args.weights:
        print("note: deterministic weights: latency and MACs are representative, masks and scores are not "
              "(every kernel passes the score threshold, so post-processing handles all instances).")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-bench``: errors end in one line (a bad --weights / --model file named)."""
    return run_cli(PROG, build_parser(), run, argv, files=lambda a: [a.model, *checkpoint_files(a)])


if __name__ == "__main__":
    raise SystemExit(main())
