"""``python -m calibnet.benchmarks.int8_splits``: which parts to keep in float for OpenVINO INT8."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from calibnet.benchmarks import int8_splits as bench
from calibnet.export.openvino_int8 import DEFAULT_KEEP_FLOAT

from .app import parser, run_cli
from .options import add_threads

PROG = "python -m calibnet.benchmarks.int8_splits"


def build_parser() -> argparse.ArgumentParser:
    """The tool's argument parser."""
    p = parser(PROG, bench.__doc__)
    p.add_argument("onnx", help="a static portable ONNX export")
    p.add_argument("--splits", default=f"none,{'+'.join(DEFAULT_KEEP_FLOAT)}",
                   help="comma-separated splits (groups joined by +, none, optional :transformer; default: none and "
                        "the default split)")
    p.add_argument("--calib", type=int, default=8, help="synthetic calibration scenes (8)")
    p.add_argument("--iters", type=int, default=5, help="timed rounds (5)")
    add_threads(p, 2)
    p.add_argument("--reference-npz", default=None, help="comparison input (net_rgb_u8/net_depth_u8)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--workdir", default=None, help="keep the INT8 IRs here (default: a temporary folder)")
    return p


def run(args: argparse.Namespace) -> int:
    """Quantize, time and compare every split; one line per row."""
    splits = args.splits.split(",")
    for s in splits:
        bench.parse_split(s)  # a bad split name is a ValueError before anything runs
    with tempfile.TemporaryDirectory(prefix="calibnet-int8-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        doc = bench.run_splits(args.onnx, splits, args.calib, args.iters, args.threads, args.reference_npz, workdir,
                               lambda m: print(m, file=sys.stderr, flush=True))
    for name, r in doc["rows"].items():
        print(f"{name:<48} {r['median_ms']:9.1f} ms  {r['speedup_vs_onnxruntime']:5.2f}x ORT  "
              f"mask agreement {100 * r['mask_agreement']:.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the INT8 split benchmark."""
    return run_cli(PROG, build_parser(), run, argv, files=lambda a: [a.onnx])
