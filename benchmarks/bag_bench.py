"""ROS bag benchmark: what reading and decoding a bag adds to a frame, next to the model's time per frame.

Examples:
  python -m calibnet.benchmarks.bag_bench                          # 300 frames of 640x480, the R18 preset
  python -m calibnet.benchmarks.bag_bench --frames 300 --size 640x480 --model r18.onnx --threads 4 --json bag.json

It writes synthetic RGB-D bags (:func:`calibnet.data.synthetic_bag.write_synthetic_bag`, rosbag2 MCAP, colour and
depth at 30 Hz) in two encodings: ``raw`` (sensor_msgs/Image rgb8 + 16UC1) and ``compressed`` (CompressedImage
jpeg + compressedDepth PNG). For each bag it times, best of ``--repeats``, what ``calibnet-infer --bag`` does
before the model: :class:`~calibnet.runtime.apps.sources.bag.BagSource` opening the bag (every header stamp
read, colour paired with depth) and handing out every frame (colour decoded to RGB, depth to metres), per
frame. The model row is ``Runtime.predict`` on the same 640x480 frames (the R18 preset exported to ONNX at
320x480 with deterministic weights unless ``--model``; ``--model-frames`` frames after one warm-up). The
``share`` column is read+decode time over model time; the exit status is 1 when the raw bag's share is above
``--limit`` (default 10%).

Time it on a quiet machine: the figures are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import calibnet
from calibnet.data.synthetic_bag import write_synthetic_bag
from calibnet.runtime import BagSource, DepthFormat, Runtime
from calibnet.runtime.apps.sources import Frame

__all__ = ["BagRow", "time_bag", "time_model", "main"]

#: bag name -> (colour, depth) encodings of write_synthetic_bag
ENCODINGS = {"raw": ("rgb8", "16UC1"), "compressed": ("jpeg", "compressedDepth")}


@dataclass
class BagRow:
    """One bag: its size and the best read + decode time per frame."""

    name: str
    frames: int
    size_mb: float
    open_ms: float  # reading the stamps and pairing, for the whole bag
    ms_per_frame: float  # (open + every frame read and decoded) / frames


def time_bag(path: Path, name: str, repeats: int) -> BagRow:
    """Best of ``repeats``: open ``path`` with BagSource and decode every frame."""
    best_total, best_open, n = np.inf, np.inf, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        src = BagSource(path)
        t1 = time.perf_counter()
        n = sum(isinstance(f, Frame) for f in src)
        t2 = time.perf_counter()
        best_total, best_open = min(best_total, t2 - t0), min(best_open, t1 - t0)
    size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    return BagRow(name, n, size / 2**20, best_open * 1e3, best_total / max(n, 1) * 1e3)


def time_model(model: Path, frames: list[Frame], fmt: DepthFormat, threads: int) -> float:
    """Milliseconds per frame of ``Runtime.predict`` over ``frames`` (after one warm-up), depth read with
    ``fmt`` as calibnet-infer --bag reads it."""
    with Runtime.open(model, **({"threads": threads} if threads else {})) as rt:
        rt.predict(frames[0].rgb, frames[0].depth, depth_format=fmt)
        t0 = time.perf_counter()
        for f in frames:
            rt.predict(f.rgb, f.depth, depth_format=fmt)
        return (time.perf_counter() - t0) / len(frames) * 1e3


def _export_r18(workdir: Path) -> Path:
    from calibnet.export import export_onnx  # torch

    return export_onnx(calibnet.build_model("r18", quiet=True), workdir / "r18.onnx", height=320, width=480)


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m calibnet.benchmarks.bag_bench``."""
    p = argparse.ArgumentParser(prog="python -m calibnet.benchmarks.bag_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300, help="colour frames per bag (default 300)")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--model", type=Path, help="ONNX model (default: the R18 preset exported into --workdir)")
    p.add_argument("--model-frames", type=int, default=20, help="frames the model is timed on (default 20)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default: its own)")
    p.add_argument("--repeats", type=int, default=3, help="reads of each bag; the best counts (default 3)")
    p.add_argument("--limit", type=float, default=0.10, help="largest read+decode share of the model time (0.10)")
    p.add_argument("--workdir", type=Path, help="where the bags (and the model) go (default: a temp folder)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        w, h = args.size
        rows = []
        for name, (color, depth) in ENCODINGS.items():
            bag = write_synthetic_bag(work / f"bench_{name}", n_color=args.frames, hw=(h, w), color=color,
                                      depth=depth, depth_hz=30.0)
            rows.append(time_bag(bag.path, name, args.repeats))
        model = args.model or _export_r18(work)
        src = BagSource(work / "bench_raw")
        frames = [f for f in src.read(range(args.model_frames)) if isinstance(f, Frame)]
        model_ms = time_model(model, frames, src.depth_format, args.threads)
    print(f"bag read + decode vs model ({model.name}, {w}x{h}, {args.frames} frames):")
    print(f"{'bag':12s} {'frames':>6s} {'MB':>8s} {'open ms':>9s} {'ms/frame':>9s} {'model ms':>9s} {'share':>7s}")
    for r in rows:
        print(f"{r.name:12s} {r.frames:6d} {r.size_mb:8.1f} {r.open_ms:9.1f} {r.ms_per_frame:9.2f} {model_ms:9.1f} "
              f"{r.ms_per_frame / model_ms:7.1%}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(model), "model_ms_per_frame": model_ms, "size": [w, h],
                                         "rows": [asdict(r) for r in rows]}, indent=1))
    return 0 if rows[0].ms_per_frame <= args.limit * model_ms else 1


if __name__ == "__main__":
    sys.exit(main())
