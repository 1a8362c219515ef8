"""``python -m calibnet.benchmarks.openvino_ab``: OpenVINO rows before and after the fused MSDA kernel, interleaved."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from calibnet.benchmarks import openvino_ab as bench

from .app import parser, run_cli
from .options import add_checkpoint, add_input_size, add_threads, checkpoint_files

PROG = "python -m calibnet.benchmarks.openvino_ab"


def build_parser() -> argparse.ArgumentParser:
    """The tool's argument parser."""
    p = parser(PROG, bench.__doc__)
    add_checkpoint(p)
    add_input_size(p)
    add_threads(p, 2)
    p.add_argument("--iters", type=int, default=10, help="timed rounds (10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds (2)")
    p.add_argument("--calib", type=int, default=8, help="synthetic calibration scenes per INT8 IR (8)")
    p.add_argument("--workdir", default=None, help="keep the exported files here (default: a temporary folder)")
    p.add_argument("--json", default=None, help="write the results here")
    return p


def run(args: argparse.Namespace) -> int:
    """Build the model, run every row; one line per row (p50 end to end and inference, speed-up vs ONNX Runtime,
    mask agreement)."""
    model = bench.ab_model(args.config, args.weights, args.height, args.width)
    with tempfile.TemporaryDirectory(prefix="calibnet-ab-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        doc = bench.run_ab(model, args.height, args.width, workdir, args.threads, args.iters, args.warmup, args.calib,
                           lambda m: print(m, file=sys.stderr, flush=True))
    doc.update(config=args.config, weights=args.weights or "deterministic weights (seed 0)")
    for name, r in doc["rows"].items():
        if "e2e_ms" not in r:
            print(f"{name:<22} {r.get('skipped', '')}")
            continue
        print(f"{name:<22} e2e p50 {r['e2e_ms']['p50']:8.1f} ms  infer p50 {r['infer_ms']['p50']:8.1f} ms  "
              f"{r['speedup_vs_onnxruntime']:5.2f}x ORT  mask agreement vs ORT "
              f"{100 * r['mask_agreement_vs_onnxruntime']:.2f}%  {r.get('msda', '')}")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the OpenVINO before/after benchmark."""
    return run_cli(PROG, build_parser(), run, argv, files=checkpoint_files)
