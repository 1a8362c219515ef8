"""``python -m calibnet.benchmarks.bag_bench``: reading and decoding a ROS bag next to the model's time per frame."""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from calibnet.benchmarks import bag_bench as bench
from calibnet.runtime import BagSource
from calibnet.runtime.apps.sources import Frame

from .app import CliError, parser, run_cli
from .options import add_threads

PROG = "python -m calibnet.benchmarks.bag_bench"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH like 640x480, got {text!r}") from None
    return w, h


def build_parser() -> argparse.ArgumentParser:
    """The tool's argument parser."""
    p = parser(PROG, bench.__doc__)
    p.add_argument("--frames", type=int, default=300, help="colour frames per bag (default 300)")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--model", help="ONNX model (default: the R18 preset exported into --workdir)")
    p.add_argument("--model-frames", type=int, default=20, help="frames the model is timed on (default 20)")
    add_threads(p)
    p.add_argument("--repeats", type=int, default=3, help="reads of each bag; the best counts (default 3)")
    p.add_argument("--limit", type=float, default=0.10, help="largest read+decode share of the model time (0.10)")
    p.add_argument("--workdir", help="where the bags (and the model) go (default: a temp folder)")
    p.add_argument("--json", help="also write the rows as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Time the bags and the model; exit 1 when the raw bag costs more than ``--limit`` of the model's time."""
    if args.frames < 1 or args.model_frames < 1 or args.repeats < 1 or min(args.size) < 32:
        raise CliError("--frames, --model-frames and --repeats must be >= 1 and the frame sides >= 32")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = bench.bag_rows(work, args.frames, args.size, args.repeats)
        model = Path(args.model) if args.model else bench.export_r18(work)
        src = BagSource(work / "bench_raw")
        frames = [f for f in src.read(range(args.model_frames)) if isinstance(f, Frame)]
        model_ms = bench.time_model(model, frames, src.depth_format, args.threads)
    w, h = args.size
    print(f"bag read + decode vs model ({model.name}, {w}x{h}, {args.frames} frames, best of {args.repeats} reads):")
    print(bench.format_rows(rows, model_ms))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": str(model), "model_ms_per_frame": model_ms, "size": [w, h],
                                               "rows": [asdict(r) for r in rows]}, indent=1))
    return 0 if rows[0].ms_per_frame <= args.limit * model_ms else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the bag benchmark."""
    return run_cli(PROG, build_parser(), run, argv, files=lambda a: [a.model])
