"""Benchmark of ``calibnet-analyze``: the whole command on a generated data set of N images.

Examples:
  python -m calibnet.benchmarks.analysis_bench                    # 2,000 images of 320x480, with salient maps
  python -m calibnet.benchmarks.analysis_bench --images 500 --data out/analysis-bench/syn500

The data set (``calibnet.data.write_synthetic_dataset``: JPEG RGB, 8-bit depth, RLE instances) and its
salient-object maps (the union of instances, the last instance of every 7th image left out:
``calibnet.analysis.write_saliency_maps``) are written once into ``--data`` and reused. Then
``calibnet-analyze --json ... --saliency-dir ... --out ...`` runs in this process, timed from argument
parsing to the last figure: wall clock, process CPU time, and the 1-minute load average before and after
(the machine may be shared). Prints one JSON line; ``--json-out`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "prepare_dataset"]


def prepare_dataset(data: Path, images: int, height: int, width: int, seed: int = 0) -> tuple[Path, Path]:
    """(annotations json, salient-map folder) of a synthetic data set of ``images`` images in ``data``,
    written unless a complete one is there."""
    from calibnet.analysis import write_saliency_maps
    from calibnet.data import synthetic_dataset_spec, write_synthetic_dataset

    spec = synthetic_dataset_spec(data, name=data.name)
    gt_dir = data / "GT"
    marker = data / f".complete-{images}-{height}x{width}-{seed}"
    if not marker.is_file():
        t = time.perf_counter()
        spec = write_synthetic_dataset(data, images, seed=seed, height=height, width=width, name=data.name)
        write_saliency_maps(spec, gt_dir, drop_every=7)
        marker.write_text("")
        print(f"wrote {images} images to {data} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return spec.json_file, gt_dir


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns calibnet-analyze's exit status."""
    from calibnet.cli.analyze import main as analyze_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--data", type=Path, default=None, help="data-set folder (default out/analysis-bench/syn<N>)")
    p.add_argument("--out", type=Path, default=Path("out/analysis-bench/report"))
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    data = args.data or Path(f"out/analysis-bench/syn{args.images}")
    json_file, gt_dir = prepare_dataset(data, args.images, args.height, args.width)
    cmd = ["--json", str(json_file), "--image-root", str(data / "RGB"), "--depth-root", str(data / "depth"),
           "--saliency-dir", str(gt_dir), "--out", str(args.out), "--no-progress"]
    if args.no_figures:
        cmd.append("--no-figures")
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    rc = analyze_main(cmd)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"images": args.images, "size": f"{args.height}x{args.width}", "wall_s": round(wall, 2),
           "cpu_s": round(cpu, 2), "ms_per_image": round(1000 * wall / max(args.images, 1), 2),
           "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2),
           "cpus": os.cpu_count(), "command": "calibnet-analyze " + " ".join(cmd), "exit": rc}
    line = json.dumps(row)
    print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
