"""``python -m calibnet.benchmarks.postprocess_bench``: the runtime's post-processing against the official one."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from calibnet.benchmarks import postprocess_bench as bench

from .app import CliError, parser, run_cli
from .options import add_checkpoint, add_threads

PROG = "python -m calibnet.benchmarks.postprocess_bench"


def build_parser() -> argparse.ArgumentParser:
    """The tool's argument parser."""
    p = parser(PROG, bench.__doc__)
    add_checkpoint(p)
    p.add_argument("--height", type=int, default=375, help="frame height (default 375)")
    p.add_argument("--width", type=int, default=500, help="frame width (default 500)")
    p.add_argument("--iters", type=int, default=50, help="timed iterations per case (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    add_threads(p)
    p.add_argument("--no-forward", action="store_true", help="synthetic cases only (no model forward)")
    p.add_argument("--json", help="write the results here")
    return p


def run(args: argparse.Namespace) -> int:
    """Time every case; exit 1 if the two post-processings disagree on one."""
    if min(args.height, args.width) < 32 or args.iters < 1:
        raise CliError("frame sides must be >= 32 and --iters >= 1")
    import torch  # the official baseline

    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    cases = [] if args.no_forward else [bench.forward_case(args.config, args.height, args.width, args.weights)]
    cases += [bench.blob_case("blobs-50", args.height, args.width, 50, seed=1),
              bench.blob_case("blobs-10", args.height, args.width, 10, seed=2)]
    results = [bench.run_case(c, args.iters, args.warmup) for c in cases]
    print(f"post-processing per frame, median wall time of {args.iters} interleaved iterations; speed-up = "
          f"official / runtime (best: of the fastest iterations; cpu: of the process CPU time, all threads); "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), OpenCV {cv2.__version__} "
          f"({cv2.getNumThreads()} threads), numpy {np.__version__}")
    print(bench.format_results(results))
    for r in results:
        if r.pre_ms is not None:
            print(f"{r.case}: runtime pre + post = {r.pre_ms + r.runtime_ms:.1f} ms per {r.frame_hw[0]}x"
                  f"{r.frame_hw[1]} frame ({r.kept} instances)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0 if all(r.check["identical"] for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the post-processing benchmark."""
    return run_cli(PROG, build_parser(), run, argv)
