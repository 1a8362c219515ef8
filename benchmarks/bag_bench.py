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

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import calibnet
from calibnet.data.synthetic_bag import write_synthetic_bag
from calibnet.runtime import BagSource, DepthFormat, Runtime
from calibnet.runtime.apps.sources import Frame
from calibnet.runtime.core.targets import ONNX_SUFFIX

__all__ = ["BagRow", "ENCODINGS", "bag_rows", "export_r18", "format_rows", "time_bag", "time_model"]

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


def export_r18(workdir: Path) -> Path:
    """The R18 preset (deterministic weights) exported to ONNX at 320x480 in ``workdir`` (needs torch)."""
    from calibnet.export import export_onnx  # torch

    return export_onnx(calibnet.build_model("r18", quiet=True), workdir / f"r18{ONNX_SUFFIX}", height=320,
                       width=480)


def bag_rows(workdir: Path, frames: int, size: tuple[int, int], repeats: int) -> list[BagRow]:
    """Write one bag per :data:`ENCODINGS` (``size`` = (width, height), colour and depth at 30 Hz) into
    ``workdir`` and time each (:func:`time_bag`)."""
    w, h = size
    rows = []
    for name, (color, depth) in ENCODINGS.items():
        bag = write_synthetic_bag(workdir / f"bench_{name}", n_color=frames, hw=(h, w), color=color, depth=depth,
                                  depth_hz=30.0)
        rows.append(time_bag(bag.path, name, repeats))
    return rows


def format_rows(rows: list[BagRow], model_ms: float) -> str:
    """The table: one line per bag, its read + decode time per frame next to the model's."""
    lines = [f"{'bag':12s} {'frames':>6s} {'MB':>8s} {'open ms':>9s} {'ms/frame':>9s} {'model ms':>9s} {'share':>7s}"]
    lines += [f"{r.name:12s} {r.frames:6d} {r.size_mb:8.1f} {r.open_ms:9.1f} {r.ms_per_frame:9.2f} {model_ms:9.1f} "
              f"{r.ms_per_frame / model_ms:7.1%}" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    from calibnet.cli.bag_bench import main

    raise SystemExit(main())
